"""The vault's encryption and key parsing, without files or a database."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from ledgerlink.settings import Settings
from ledgerlink.vault import MASK, MISSING_KEY_MESSAGE, Vault, VaultError, load_vault, mask, new_key


def env_settings(keys: str) -> Settings:
    return Settings(vault_keys=SecretStr(keys), _env_file=None)


def test_a_secret_round_trips_and_the_token_does_not_contain_it() -> None:
    vault = Vault([new_key()])
    token = vault.encrypt("client-secret-ü-123")
    assert "client-secret" not in token
    assert vault.decrypt(token) == "client-secret-ü-123"


def test_encrypting_twice_gives_different_tokens() -> None:
    vault = Vault([new_key()])
    assert vault.encrypt("same") != vault.encrypt("same")


def test_a_token_from_a_missing_key_tells_the_operator_how_to_recover() -> None:
    token = Vault([new_key()]).encrypt("s3cret")
    with pytest.raises(VaultError) as caught:
        Vault([new_key()]).decrypt(token)
    assert str(caught.value) == MISSING_KEY_MESSAGE
    assert "LEDGERLINK_VAULT_KEYS" in str(caught.value)
    assert "re-enter the secret" in str(caught.value)


def test_a_damaged_token_is_reported_the_same_way() -> None:
    with pytest.raises(VaultError, match="restore the old key"):
        Vault([new_key()]).decrypt("not-a-token-ü")


def test_older_keys_still_decrypt_and_rotate_token_moves_to_the_primary() -> None:
    old, new = new_key(), new_key()
    token = Vault([old]).encrypt("s3cret")
    both = Vault([new, old])
    assert both.decrypt(token) == "s3cret"
    rotated = both.rotate_token(token)
    assert Vault([new]).decrypt(rotated) == "s3cret"
    with pytest.raises(VaultError):
        Vault([old]).decrypt(rotated)


def test_new_secrets_are_encrypted_under_the_first_key() -> None:
    old, new = new_key(), new_key()
    token = Vault([new, old]).encrypt("s3cret")
    assert Vault([new]).decrypt(token) == "s3cret"


def test_rotate_token_refuses_a_token_no_key_can_read() -> None:
    token = Vault([new_key()]).encrypt("s3cret")
    with pytest.raises(VaultError, match="missing"):
        Vault([new_key()]).rotate_token(token)


def test_a_vault_needs_at_least_one_key() -> None:
    with pytest.raises(VaultError, match="new-key"):
        Vault([])


def test_keys_from_the_environment_are_used_newest_first() -> None:
    old, new = new_key(), new_key()
    vault = load_vault(env_settings(f" {new} , {old} "))
    assert vault.key_count == 2
    assert Vault([new]).decrypt(vault.encrypt("x")) == "x"


def test_a_bad_key_in_the_environment_is_named_by_position_without_echoing_it() -> None:
    with pytest.raises(VaultError) as caught:
        load_vault(env_settings(f"{new_key()},not-a-real-key-at-all"))
    message = str(caught.value)
    assert "LEDGERLINK_VAULT_KEYS" in message
    assert "position 2" in message
    assert "not-a-real-key" not in message
    assert "ledgerlink vault new-key" in message


def test_a_stray_comma_in_the_environment_is_named() -> None:
    with pytest.raises(VaultError, match="position 2 is empty"):
        load_vault(env_settings(f"{new_key()},,{new_key()}"))


def test_new_key_is_a_valid_fernet_key() -> None:
    Fernet(new_key())
    assert new_key() != new_key()


def test_mask_never_shows_any_character_of_the_secret() -> None:
    assert mask("hunter2") == MASK == "••••••••"
    assert set(mask("abcdefgh")).isdisjoint(set("abcdefgh"))
    assert mask("a" * 200) == mask("b")  # not even the length


def test_mask_of_an_unset_secret_is_empty() -> None:
    assert mask(None) == ""
    assert mask("") == ""


def test_the_vault_never_shows_its_keys() -> None:
    key = new_key()
    assert key not in repr(Vault([key]))


def test_derived_secrets_are_stable_per_key_and_differ_per_purpose() -> None:
    key = new_key()
    assert Vault([key]).derive_secret("csrf") == Vault([key]).derive_secret("csrf")
    assert Vault([key]).derive_secret("csrf") != Vault([key]).derive_secret("other")
    assert Vault([key]).derive_secret("csrf") != Vault([new_key()]).derive_secret("csrf")
    assert len(Vault([key]).derive_secret("csrf")) == 32
