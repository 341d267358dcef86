"""Bank accounts as the simulator sees them: validated, masked and then forgotten.

A check (ACH) request carries ``check: {account_number, routing_number}``. The routing
number must be nine digits with a valid ABA check digit (PayTrace's error 46), the account
number 4 to 17 digits (error 45). Only the masked account number (``xxxxx3456``) and the
routing number (public: it names the bank) are kept; nothing in this package writes the
full account number anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledgerlink.sandbox.paytrace import codes

#: The routing number PayTrace's sandbox accepts in public client tests (any 6-digit
#: account number with it is processed).
TEST_ROUTING_NUMBER = "325070760"
_ABA_WEIGHTS = (3, 7, 1, 3, 7, 1, 3, 7, 1)


@dataclass(frozen=True, slots=True)
class BankFacts:
    """All the simulator keeps of a bank account."""

    masked_account: str
    routing_number: str


def routing_valid(routing: str) -> bool:
    if len(routing) != 9 or not routing.isdigit() or routing == "0" * 9:
        return False
    return sum(int(d) * w for d, w in zip(routing, _ABA_WEIGHTS, strict=True)) % 10 == 0


def mask_account(account: str) -> str:
    return "x" * (len(account) - 4) + account[-4:]


def _digits(value: Any) -> str:
    return "".join(ch for ch in str(value or "") if not ch.isspace() and ch != "-")


def read_check(check: Any) -> tuple[BankFacts | None, dict[str, list[str]]]:
    """Validate ``check{account_number, routing_number}``; the facts to keep, or errors."""
    raw = check if isinstance(check, dict) else {}
    account = _digits(raw.get("account_number"))
    routing = _digits(raw.get("routing_number"))
    errors: dict[str, list[str]] = {}
    if not (account.isdigit() and 4 <= len(account) <= 17):
        errors[codes.E_CHECK_ACCOUNT] = [codes.ERROR_TEXTS[codes.E_CHECK_ACCOUNT]]
    if not routing_valid(routing):
        errors[codes.E_CHECK_ROUTING] = [codes.ERROR_TEXTS[codes.E_CHECK_ROUTING]]
    if errors:
        return None, errors
    return BankFacts(mask_account(account), routing), {}
