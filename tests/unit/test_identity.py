"""Roles, passwords and tokens, without I/O."""

from __future__ import annotations

import pytest

from ledgerlink.identity import passwords, tokens
from ledgerlink.identity.roles import Role, parse_role


@pytest.mark.parametrize(
    ("role", "required", "allowed"),
    [
        (Role.VIEWER, Role.VIEWER, True),
        (Role.VIEWER, Role.OPERATOR, False),
        (Role.OPERATOR, Role.VIEWER, True),
        (Role.OPERATOR, Role.ADMIN, False),
        (Role.ADMIN, Role.OPERATOR, True),
    ],
)
def test_roles_are_ordered_viewer_operator_admin(role: Role, required: Role, allowed: bool):
    assert role.allows(required) is allowed


def test_an_unknown_role_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="viewer, operator, admin"):
        parse_role("superuser")


def test_short_passwords_are_refused() -> None:
    with pytest.raises(passwords.WeakPassword, match="12 characters"):
        passwords.check_strength("short-pw")


def test_password_verification_accepts_only_the_right_password() -> None:
    stored = passwords.hash_password("a long enough passphrase")
    assert passwords.verify_password(stored, "a long enough passphrase")
    assert not passwords.verify_password(stored, "a long enough passphrasE")
    assert not passwords.verify_password(None, "a long enough passphrase")


def test_api_tokens_are_unique_and_carry_their_display_prefix() -> None:
    first, prefix = tokens.new_api_token()
    second, _ = tokens.new_api_token()
    assert first != second
    assert first.startswith(prefix + "_")
    assert prefix.startswith("llk_")
    assert tokens.digest(first) != tokens.digest(second)
    assert first not in tokens.digest(first)
