"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106).

Production always hashes with argon2-cffi's defaults (RFC 9106's low-memory profile:
3 passes over 64 MiB, 4 lanes), about 0.2 s of CPU per hash or check: that cost is the
point, it is what makes a stolen hash expensive to guess at.

Tests sign in hundreds of times, and every sign-in and every user they create pays that
cost again without testing anything new. Django's testing guide recommends the same
remedy for the same reason ("Speeding up the tests": "use a faster password hasher" in
test settings, https://docs.djangoproject.com/en/stable/topics/testing/overview/#speeding-up-the-tests).
``use_cheapest_hashing_for_tests()`` switches this process to argon2id with the smallest
parameters argon2 allows. Why this cannot weaken an installation:

* Nothing in ``ledgerlink`` calls it; only ``tests/conftest.py`` does, explicitly. It is
  not a setting: no environment variable, ``ledgerlink.toml`` key or command-line option
  reaches it, and it refuses to run in a process that has not imported pytest.
* It is the same algorithm through the same code; only the cost parameters change, and
  an argon2 hash carries its own parameters (``$argon2id$v=19$m=…,t=…,p=…$``), so
  verifying a hash made under either profile works under the other.
* Should a cheap hash ever reach a production database (say, a test database copied
  over), ``needs_rehash`` compares it with the production parameters and signing in
  re-hashes it at full cost.
* Subprocesses the tests start (``ledgerlink serve``, the CLI) never call it, so the
  end-to-end tests still hash and verify at full cost.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12


@dataclass
class _Hashing:
    """The hasher in use and the hash a check runs against when the e-mail is unknown
    (so a wrong e-mail costs the same time as a wrong password, and response times do
    not reveal which accounts exist): made with the same parameters, at start-up."""

    hasher: PasswordHasher
    dummy_hash: str = field(init=False)

    def __post_init__(self) -> None:
        self.dummy_hash = self.hasher.hash("ledgerlink-timing-equaliser")


_active = _Hashing(PasswordHasher())


def use_cheapest_hashing_for_tests() -> None:
    """Hash with argon2id at its minimum cost (1 pass over 8 KiB, 1 lane) in this
    process, for test suites only: see the module docstring for why this is safe."""
    global _active
    if "pytest" not in sys.modules:
        raise RuntimeError("cheap password hashing is for test suites run by pytest only")
    _active = _Hashing(
        PasswordHasher(
            time_cost=1, memory_cost=8, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
        )
    )


class WeakPassword(ValueError):
    pass


def check_strength(password: str) -> None:
    """Refuse passwords that are too short to resist guessing; length beats composition."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password must be at least {MIN_LENGTH} characters long")
    if password.strip() != password or not password.strip():
        raise WeakPassword("password must not start or end with spaces")


def hash_password(password: str) -> str:
    return _active.hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always spends one argon2 verification."""
    try:
        return (
            _active.hasher.verify(password_hash or _active.dummy_hash, password)
            and password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _active.hasher.check_needs_rehash(password_hash)
