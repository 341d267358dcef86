"""Currency and decimal precision: moving an amount into a system whose currency table
says how many decimal places it keeps, and converting between currencies.

Rules (documented because finance will ask):

* Digits come from the *target's* currency table first (Sage 500
  ``tmcCurrency.DigitsAfterDecimal``), ISO 4217 (via babel, see ``domain/money.py``)
  otherwise.
* Gaining precision (2 → 3 digits) is exact. Losing precision (3 → 2) rounds by the
  spec's explicit rule (``half_up`` by default: ties away from zero) and the part
  rounded off is *reported* as a remainder in the source's minor units, never dropped
  silently: ``rounded * 10**(from-to) + remainder == original`` always holds.
* A conversion between currencies needs a rate from a :class:`RateSource`; the rate,
  its source and date are returned with the result so a run can record them, with the
  exact (unrounded) amount and the remainder.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Protocol

from ledgerlink.domain.money import Money, MoneyError, minor_digits, normalise_currency
from ledgerlink.mapping.errors import MappingValueError


class Rounding(StrEnum):
    """How an amount is rounded when precision is lost."""

    HALF_UP = "half_up"  # ties away from zero: 1.005 → 1.01, -1.005 → -1.01
    HALF_EVEN = "half_even"  # banker's rounding: 1.005 → 1.00, 1.015 → 1.02
    DOWN = "down"  # towards zero: 1.009 → 1.00


_DECIMAL_ROUNDING = {
    Rounding.HALF_UP: ROUND_HALF_UP,
    Rounding.HALF_EVEN: ROUND_HALF_EVEN,
    Rounding.DOWN: ROUND_DOWN,
}


@dataclass(frozen=True, slots=True)
class CurrencyTable:
    """Decimal places per currency as one system keeps them (e.g. Sage 500's
    ``tmcCurrency``); currencies it does not list follow ISO 4217."""

    digits: Mapping[str, int]

    def digits_for(self, currency: str) -> int:
        code = normalise_currency(currency)
        found = self.digits.get(code)
        return minor_digits(code) if found is None else found


ISO_4217 = CurrencyTable({})


@dataclass(frozen=True, slots=True)
class Rescaled:
    """``minor`` units at ``digits`` places, plus what rounding took off (``remainder``,
    in the source's minor units, signed: ``original - minor * 10**(from-to)``)."""

    minor: int
    digits: int
    remainder: int
    from_digits: int

    @property
    def text(self) -> str:
        return plain(self.minor, self.digits)


def rescale(minor: int, from_digits: int, to_digits: int, rounding: Rounding) -> Rescaled:
    """Move ``minor`` units from ``from_digits`` to ``to_digits`` decimal places."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise MappingValueError(f"an amount in minor units must be a whole number, got {minor!r}")
    if to_digits >= from_digits:
        return Rescaled(minor * 10 ** (to_digits - from_digits), to_digits, 0, from_digits)
    scale = 10 ** (from_digits - to_digits)
    sign = -1 if minor < 0 else 1
    whole, part = divmod(abs(minor), scale)
    twice = 2 * part
    if rounding is Rounding.DOWN:
        up = False
    elif rounding is Rounding.HALF_UP:
        up = twice >= scale
    else:  # HALF_EVEN
        up = twice > scale or (twice == scale and whole % 2 == 1)
    rounded = sign * (whole + (1 if up else 0))
    return Rescaled(rounded, to_digits, minor - rounded * scale, from_digits)


def plain(minor: int, digits: int) -> str:
    """``1234, 2`` → ``"12.34"``; ``-5, 3`` → ``"-0.005"``; ``7, 0`` → ``"7"``."""
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**digits)
    return f"{sign}{whole}.{fraction:0{digits}d}" if digits else f"{sign}{whole}"


def to_target(money: Money, table: CurrencyTable, rounding: Rounding) -> Rescaled:
    """``money`` in the precision the target keeps for its currency."""
    return rescale(
        money.minor, minor_digits(money.currency), table.digits_for(money.currency), rounding
    )


@dataclass(frozen=True, slots=True)
class FromSource:
    money: Money
    remainder: int  # in the source's minor units
    source_digits: int


def from_source(
    amount: str | Decimal | int, currency: str, table: CurrencyTable, rounding: Rounding
) -> FromSource:
    """Money from an amount written with the *source's* precision (e.g. a Sage 500 site
    keeping USD to 3 places): parsed exactly at that precision, then rounded to ISO."""
    code = _currency(currency)
    source_digits = table.digits_for(code)
    minor = _parse_minor(amount, code, source_digits)
    moved = rescale(minor, source_digits, minor_digits(code), rounding)
    return FromSource(Money(moved.minor, code), moved.remainder, source_digits)


def _parse_minor(amount: str | Decimal | int, currency: str, digits: int) -> int:
    if isinstance(amount, (bool, float)):
        raise MappingValueError(
            f"amount {amount!r} is a float",
            "send amounts as decimal strings such as '12.50' (parse JSON with Decimal)",
        )
    try:
        value = Decimal(amount.strip()) if isinstance(amount, str) else Decimal(amount)
    except ArithmeticError:
        raise MappingValueError(
            f"amount {amount!r} is not a decimal number", "write it like '1234.50'"
        ) from None
    if not value.is_finite():
        raise MappingValueError(f"amount {amount!r} is not a finite number")
    scaled = value.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise MappingValueError(
            f"amount {amount!r} has more decimal places than {currency} has here ({digits})",
            "check the currency's digits in the spec's currency.source_digits",
        )
    return int(scaled)


# ---- conversion ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    """``1 base = rate quote``, from ``source`` on ``as_of``."""

    base: str
    quote: str
    rate: Decimal
    source: str
    as_of: dt.date

    def as_dict(self) -> dict[str, str]:
        return {
            "base": self.base,
            "quote": self.quote,
            "rate": str(self.rate),
            "source": self.source,
            "as_of": self.as_of.isoformat(),
        }


class RateSource(Protocol):
    """Where exchange rates come from (a table in the spec, the ERP, a bank feed)."""

    def rate(self, base: str, quote: str, on: dt.date) -> ExchangeRate | None: ...


@dataclass(frozen=True, slots=True)
class FixedRates:
    """Rates from a table: ``{("EUR", "USD"): Decimal("1.0832")}``; the inverse pair is
    derived when only one direction is given."""

    rates: Mapping[tuple[str, str], Decimal]
    source: str = "fixed table"
    as_of: dt.date = dt.date(1970, 1, 1)

    def rate(self, base: str, quote: str, on: dt.date) -> ExchangeRate | None:
        found = self.rates.get((base, quote))
        if found is None:
            inverse = self.rates.get((quote, base))
            if inverse is None or inverse == 0:
                return None
            found = Decimal(1) / inverse
        return ExchangeRate(base, quote, Decimal(found), self.source, self.as_of)


@dataclass(frozen=True, slots=True)
class Conversion:
    amount: Money
    rate: ExchangeRate
    exact: Decimal  # the unrounded amount in the quote currency's major units
    remainder: Decimal  # exact - amount, in major units of the quote currency

    def as_dict(self) -> dict[str, object]:
        return {
            "amount": self.amount.format_plain(),
            "currency": self.amount.currency,
            "exact": str(self.exact),
            "remainder": str(self.remainder),
            "rate": self.rate.as_dict(),
        }


def convert(
    money: Money, quote: str, rates: RateSource, on: dt.date, rounding: Rounding
) -> Conversion:
    """``money`` in ``quote`` currency at the rate ``rates`` gives for ``on``."""
    target = _currency(quote)
    if target == money.currency:
        unit = ExchangeRate(target, target, Decimal(1), "same currency", on)
        return Conversion(money, unit, money.to_decimal(), Decimal(0))
    found = rates.rate(money.currency, target, on)
    if found is None:
        raise MappingValueError(
            f"no exchange rate from {money.currency} to {target} for {on.isoformat()}",
            "add the rate to the rate source (or the spec's rates table) and retry",
        )
    exact = money.to_decimal() * found.rate
    digits = minor_digits(target)
    quantum = Decimal(1).scaleb(-digits)
    rounded = exact.quantize(quantum, rounding=_DECIMAL_ROUNDING[rounding])
    converted = Money(int(rounded.scaleb(digits)), target)
    return Conversion(converted, found, exact, exact - rounded)


def _currency(code: str) -> str:
    try:
        return normalise_currency(code)
    except MoneyError as exc:
        raise MappingValueError(str(exc), "use an ISO 4217 code such as USD") from None
