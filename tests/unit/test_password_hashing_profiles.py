"""The cheap argon2 profile the suite signs in with cannot reach an installation: production
processes hash at argon2-cffi's RFC 9106 defaults, and a cheap hash is re-hashed at full cost
at its next sign-in (``ledgerlink/identity/passwords.py`` says why this profile exists)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from argon2 import PasswordHasher

from ledgerlink.identity import passwords

_LEDGERLINK = Path(passwords.__file__).resolve().parents[1]


def test_a_process_without_pytest_hashes_at_full_cost_and_refuses_the_cheap_profile() -> None:
    script = (
        "from ledgerlink.identity import passwords\n"
        "print(passwords.hash_password('a long enough passphrase'))\n"
        "try:\n"
        "    passwords.use_cheapest_hashing_for_tests()\n"
        "except RuntimeError as exc:\n"
        "    print('refused:', exc)\n"
        "print(passwords.hash_password('a long enough passphrase'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    first, refusal, second = done.stdout.splitlines()
    for stored in (first, second):
        assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), stored
        assert not PasswordHasher().check_needs_rehash(stored)
    assert refusal.startswith("refused:")


def test_a_cheap_hash_verifies_anywhere_and_is_rehashed_at_full_cost() -> None:
    cheap = passwords.hash_password("a long enough passphrase")  # the suite's profile
    assert cheap.startswith("$argon2id$")
    production = PasswordHasher()
    assert production.verify(cheap, "a long enough passphrase")
    assert production.check_needs_rehash(cheap)


def test_only_the_test_suite_switches_to_the_cheap_profile() -> None:
    callers = [
        path.relative_to(_LEDGERLINK.parent)
        for path in _LEDGERLINK.rglob("*.py")
        if "use_cheapest_hashing_for_tests" in path.read_text(encoding="utf-8")
    ]
    assert callers == [Path("ledgerlink/identity/passwords.py")]
