"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()

MIN_LENGTH = 12

#: Verified against when the e-mail is unknown, so a wrong e-mail costs the same time as
#: a wrong password and response times do not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("ledgerlink-timing-equaliser")


class WeakPassword(ValueError):
    pass


def check_strength(password: str) -> None:
    """Refuse passwords that are too short to resist guessing; length beats composition."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password must be at least {MIN_LENGTH} characters long")
    if password.strip() != password or not password.strip():
        raise WeakPassword("password must not start or end with spaces")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always spends one argon2 verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)
