"""Card numbers as the simulator sees them: validated, typed, masked and then forgotten.

Full card numbers and CSCs exist only inside one request; nothing in this package writes
them anywhere (the database holds masked numbers, card types and expiry dates only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from ledgerlink.logs import luhn_valid
from ledgerlink.sandbox.paytrace import codes


@dataclass(frozen=True, slots=True)
class TestCard:
    number: str
    csc: str
    card_type: str


#: PayTrace's published sandbox cards (any future expiry).
TEST_CARDS: tuple[TestCard, ...] = (
    TestCard("4012000098765439", "999", "Visa"),
    TestCard("5499740000000057", "998", "MasterCard"),
    TestCard("6011000993026909", "996", "Discover"),
    TestCard("371449635392376", "9997", "AMEX"),
)
_CSC_BY_NUMBER = {card.number: card.csc for card in TEST_CARDS}


@dataclass(frozen=True, slots=True)
class CardFacts:
    """All the simulator keeps of a card."""

    masked: str
    card_type: str
    expiration_month: int
    expiration_year: int
    csc_response: str = ""

    @property
    def last4(self) -> str:
        return self.masked[-4:]

    @property
    def fingerprint(self) -> str:
        return f"{self.card_type}:{self.masked}:{self.expiration_month}/{self.expiration_year}"


def card_type(number: str) -> str:
    if number.startswith("4"):
        return "Visa"
    if number[:2] in ("34", "37"):
        return "AMEX"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "MasterCard"
    if number.startswith(("6011", "65", "644", "645", "646", "647", "648", "649", "622")):
        return "Discover"
    if number[:4] in ("3528", "3589") or "3528" <= number[:4] <= "3589":
        return "JCB"
    return "Unknown"


def mask(number: str) -> str:
    return "x" * (len(number) - 4) + number[-4:]


def _digits(value: Any) -> str:
    return "".join(ch for ch in str(value or "") if not ch.isspace() and ch != "-")


def read_card(
    number: Any, month: Any, year: Any, csc: Any, *, today: date
) -> tuple[CardFacts | None, dict[str, list[str]]]:
    """Validate a keyed card; return what may be kept of it, or the PayTrace error map."""
    errors: dict[str, list[str]] = {}
    digits = _digits(number)
    if not (digits.isdigit() and 13 <= len(digits) <= 19 and luhn_valid(digits)):
        errors[codes.E_CARD_NUMBER] = [codes.ERROR_TEXTS[codes.E_CARD_NUMBER]]
    exp_month = _int(month)
    if exp_month is None or not 1 <= exp_month <= 12:
        errors[codes.E_EXP_MONTH] = [codes.ERROR_TEXTS[codes.E_EXP_MONTH]]
    exp_year = _int(year)
    if exp_year is not None and exp_year < 100:
        exp_year += 2000
    if (
        exp_year is None
        or not today.year <= exp_year <= today.year + 20
        or (exp_month is not None and (exp_year, exp_month) < (today.year, today.month))
    ):
        errors[codes.E_EXP_YEAR] = [codes.ERROR_TEXTS[codes.E_EXP_YEAR]]
    if errors:
        return None, errors
    assert exp_month is not None
    assert exp_year is not None
    return (
        CardFacts(mask(digits), card_type(digits), exp_month, exp_year, csc_check(digits, csc)),
        {},
    )


def csc_check(number: str, csc: Any) -> str:
    """The ``csc_response``: empty when no CSC was sent; Match unless a test card's CSC differs."""
    given = _digits(csc)
    if not given:
        return ""
    expected = _CSC_BY_NUMBER.get(number)
    return "Match" if expected is None or expected == given else "No Match"


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None
