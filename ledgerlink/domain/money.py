"""Money as an integer number of minor units in one ISO 4217 currency.

Every amount ledgerlink stores, compares, posts or shows goes through this module, so
that there is exactly one place where text becomes money and money becomes text. Floats
are refused at the door: ``0.1 + 0.2`` must never reach a ledger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Final

from babel.numbers import UnknownCurrencyError, format_currency, get_currency_name
from babel.numbers import get_currency_precision as _babel_precision

# Where CLDR (babel) and ISO 4217 disagree on minor units, the ledgers follow ISO 4217:
# Sage and PayTrace post in ISO minor units, CLDR describes cash rounding for display.
_ISO_MINOR_DIGITS: Final[dict[str, int]] = {
    "CLP": 0,
    "COP": 2,
    "HUF": 2,
    "IDR": 2,
    "ISK": 0,
    "TWD": 2,
    "UGX": 0,
    "PKR": 2,
}

_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
_PLAIN_AMOUNT = re.compile(r"^(?P<sign>[+-]?)(?P<whole>\d+)(?:\.(?P<fraction>\d+))?$")


class MoneyError(ValueError):
    """An amount or currency that cannot be money; the message says what to fix."""


class UnknownCurrency(MoneyError):
    """A currency code that is not ISO 4217."""


class CurrencyMismatch(MoneyError):
    """Arithmetic or comparison across two currencies, which is never meaningful."""


@cache
def minor_digits(currency: str) -> int:
    """Number of decimal places of ``currency``'s minor unit (USD 2, JPY 0, KWD 3)."""
    code = normalise_currency(currency)
    if code in _ISO_MINOR_DIGITS:
        return _ISO_MINOR_DIGITS[code]
    return int(_babel_precision(code))


def normalise_currency(currency: str) -> str:
    """Upper-case, validated ISO 4217 code, or :class:`UnknownCurrency` naming the input."""
    if not isinstance(currency, str):
        raise UnknownCurrency(f"currency must be a three-letter ISO 4217 code, got {currency!r}")
    code = currency.strip().upper()
    if not _CURRENCY_CODE.match(code) or not _is_known(code):
        raise UnknownCurrency(
            f"{currency!r} is not an ISO 4217 currency code; use a code such as USD, EUR or GBP"
        )
    return code


@cache
def _is_known(code: str) -> bool:
    try:
        name = get_currency_name(code, locale="en")
    except UnknownCurrencyError:
        return False
    return name != code


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An exact amount: ``minor`` units (cents, pence, yen) of ``currency``."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise MoneyError(
                f"money is a whole number of minor units, got {type(self.minor).__name__} "
                f"{self.minor!r}; parse text with Money.parse()"
            )
        object.__setattr__(self, "currency", normalise_currency(self.currency))

    # -- construction -------------------------------------------------------------------

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str | Decimal | int, currency: str) -> Money:
        """Exact money from a decimal string such as ``"12.50"`` (or a Decimal/int in major units).

        Refuses floats, thousands separators, exponents and more decimal places than the
        currency has, because each of those hides a guess about what the sender meant.
        """
        code = normalise_currency(currency)
        digits = minor_digits(code)
        if isinstance(text, (bool, float)):
            raise MoneyError(
                f"amount {text!r} is a float; send the amount as a decimal string such as '12.50'"
            )
        if isinstance(text, int):
            return cls(text * 10**digits, code)
        if isinstance(text, Decimal):
            return cls._from_decimal(text, code, digits, shown=str(text))
        if not isinstance(text, str):
            raise MoneyError(f"amount must be a decimal string such as '12.50', got {text!r}")
        candidate = text.strip()
        match = _PLAIN_AMOUNT.match(candidate)
        if match is None:
            hint = (
                "remove thousands separators"
                if "," in candidate or " " in candidate or "_" in candidate
                else "write it like '1234.50'"
            )
            raise MoneyError(f"amount {text!r} is not a plain decimal number; {hint}")
        fraction = match["fraction"] or ""
        if len(fraction) > digits:
            raise MoneyError(
                f"amount {text!r} has {len(fraction)} decimal places but {code} has {digits}"
            )
        minor = int(match["whole"]) * 10**digits + int(fraction.ljust(digits, "0") or "0")
        return cls(-minor if match["sign"] == "-" else minor, code)

    @classmethod
    def _from_decimal(cls, value: Decimal, code: str, digits: int, shown: str) -> Money:
        try:
            if not value.is_finite():
                raise MoneyError(f"amount {shown!r} is not a finite number")
            scaled = value.scaleb(digits)
            if scaled != scaled.to_integral_value():
                raise MoneyError(
                    f"amount {shown!r} has more decimal places than {code} has ({digits})"
                )
            return cls(int(scaled), code)
        except InvalidOperation as exc:
            raise MoneyError(f"amount {shown!r} is not a decimal number") from exc

    # -- arithmetic ---------------------------------------------------------------------

    def _same(self, other: object, operation: str) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot {operation} Money and {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"cannot {operation} {self.currency} and {other.currency}; convert one first"
            )
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.minor + self._same(other, "add").minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.minor - self._same(other, "subtract").minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.minor), self.currency)

    def __mul__(self, factor: int) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise TypeError(
                "Money can only be multiplied by a whole number; use allocate() to split"
            )
        return Money(self.minor * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        return self.minor < self._same(other, "compare").minor

    def __le__(self, other: Money) -> bool:
        return self.minor <= self._same(other, "compare").minor

    def __gt__(self, other: Money) -> bool:
        return self.minor > self._same(other, "compare").minor

    def __ge__(self, other: Money) -> bool:
        return self.minor >= self._same(other, "compare").minor

    def __bool__(self) -> bool:
        return self.minor != 0

    @property
    def is_zero(self) -> bool:
        return self.minor == 0

    @property
    def is_negative(self) -> bool:
        return self.minor < 0

    def min(self, other: Money) -> Money:
        return self if self <= other else other

    def allocate(self, ratios: list[int]) -> list[Money]:
        """Split into parts proportional to ``ratios``; the parts always sum to ``self``.

        Remainder units go one each to the earliest parts (largest-remainder would be
        fairer but less predictable for an operator reading a split).
        """
        if not ratios or any(r < 0 for r in ratios) or sum(ratios) == 0:
            raise MoneyError("allocate needs at least one non-negative ratio and a positive total")
        total = sum(ratios)
        sign = -1 if self.minor < 0 else 1
        magnitude = abs(self.minor)
        shares = [magnitude * r // total for r in ratios]
        remainder = magnitude - sum(shares)
        for index in range(len(shares)):
            if remainder == 0:
                break
            if ratios[index]:
                shares[index] += 1
                remainder -= 1
        return [Money(sign * share, self.currency) for share in shares]

    # -- text ---------------------------------------------------------------------------

    def to_decimal(self) -> Decimal:
        return Decimal(self.minor).scaleb(-minor_digits(self.currency))

    def format_plain(self) -> str:
        """Machine form for APIs and CSV: ``"-1234.50"`` (no symbol, no separators)."""
        digits = minor_digits(self.currency)
        sign = "-" if self.minor < 0 else ""
        whole, fraction = divmod(abs(self.minor), 10**digits)
        return f"{sign}{whole}.{fraction:0{digits}d}" if digits else f"{sign}{whole}"

    def format_display(self, locale: str = "en_US") -> str:
        """Human form for the portal: ``"$1,234.50"``, ``"¥1,235"``; always every minor digit."""
        digits = minor_digits(self.currency)
        pattern = f"¤#,##0.{'0' * digits}" if digits else "¤#,##0"
        return format_currency(
            self.to_decimal(), self.currency, format=pattern, locale=locale, currency_digits=False
        )

    def __str__(self) -> str:
        return f"{self.format_plain()} {self.currency}"


def total(amounts: list[Money], currency: str) -> Money:
    """Sum of ``amounts`` (which must all be in ``currency``); zero for an empty list."""
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result
