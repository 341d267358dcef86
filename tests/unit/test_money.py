"""Money is exact: integer minor units, one currency, text in and out without loss."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.domain.money import (
    CurrencyMismatch,
    Money,
    MoneyError,
    UnknownCurrency,
    minor_digits,
)

CURRENCIES = st.sampled_from(["USD", "EUR", "GBP", "JPY", "KWD", "CAD", "CLP", "BHD"])
MINOR = st.integers(min_value=-(10**15), max_value=10**15)


@given(minor=MINOR, currency=CURRENCIES)
def test_plain_text_round_trips_exactly(minor: int, currency: str) -> None:
    money = Money(minor, currency)
    assert Money.parse(money.format_plain(), currency) == money


@given(a=MINOR, b=MINOR, currency=CURRENCIES)
def test_addition_and_subtraction_are_exact_inverses(a: int, b: int, currency: str) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert (x + y) - y == x
    assert (x + y).minor == a + b


@given(
    minor=MINOR,
    ratios=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=12).filter(
        lambda r: sum(r) > 0
    ),
)
def test_allocation_never_loses_or_invents_a_cent(minor: int, ratios: list[int]) -> None:
    parts = Money(minor, "USD").allocate(ratios)
    assert sum(p.minor for p in parts) == minor
    assert len(parts) == len(ratios)
    for part, ratio in zip(parts, ratios, strict=True):
        if ratio == 0:
            assert part.minor == 0
        exact = Decimal(minor) * ratio / sum(ratios)
        assert abs(Decimal(part.minor) - exact) <= 1


@given(minor=MINOR, currency=CURRENCIES)
def test_display_shows_every_minor_digit(minor: int, currency: str) -> None:
    shown = Money(minor, currency).format_display()
    digits_only = "".join(ch for ch in shown if ch.isdigit())
    assert int(digits_only) == abs(minor)
    assert shown.startswith("-") == (minor < 0)


def test_minor_digits_follow_iso_4217() -> None:
    assert (minor_digits("USD"), minor_digits("JPY"), minor_digits("KWD")) == (2, 0, 3)


def test_parse_pads_short_fractions() -> None:
    assert Money.parse("12.5", "USD") == Money(1250, "USD")
    assert Money.parse("-0.07", "usd") == Money(-7, "USD")
    assert Money.parse("1500", "JPY") == Money(1500, "JPY")


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("1,234.50", "thousands separators"),
        ("12.345", "3 decimal places but USD has 2"),
        ("1e3", "write it like"),
        ("", "write it like"),
        ("12.", "write it like"),
        ("NaN", "write it like"),
    ],
)
def test_parse_refuses_ambiguous_text_and_says_why(text: str, fix: str) -> None:
    with pytest.raises(MoneyError, match=fix):
        Money.parse(text, "USD")


def test_floats_are_refused_everywhere() -> None:
    with pytest.raises(MoneyError, match="float"):
        Money.parse(0.1, "USD")  # type: ignore[arg-type]
    with pytest.raises(MoneyError, match="whole number of minor units"):
        Money(12.5, "USD")  # type: ignore[arg-type]


def test_mixed_currency_arithmetic_is_refused() -> None:
    with pytest.raises(CurrencyMismatch, match="USD and EUR"):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(CurrencyMismatch):
        assert Money(1, "USD") < Money(2, "EUR")


def test_unknown_currency_names_the_input() -> None:
    with pytest.raises(UnknownCurrency, match="'XYZ' is not an ISO 4217"):
        Money(1, "XYZ")


def test_decimal_input_must_fit_the_currency() -> None:
    assert Money.parse(Decimal("10.10"), "USD") == Money(1010, "USD")
    with pytest.raises(MoneyError, match="more decimal places"):
        Money.parse(Decimal("10.101"), "USD")
