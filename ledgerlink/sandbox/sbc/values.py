"""Reading request values the way SBC does: amounts exactly, dates strictly, ids as sent.

Amounts arrive as JSON numbers (parsed as Decimal, never float) or strings; they are kept
as integer cents. Every refusal names the field.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ledgerlink.sandbox.sbc.errors import invalid

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
CENT = Decimal("0.01")


def cents(value: Any, source: str, *, positive: bool = False, required: bool = True) -> int:
    """Integer cents from a JSON amount; at most 2 decimal places, like the ledger."""
    if value is None or value == "":
        if required:
            raise invalid(source, "can't be blank")
        return 0
    if isinstance(value, (bool, float)):
        raise invalid(source, "is not a number")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise invalid(source, "is not a number") from None
    if not amount.is_finite():
        raise invalid(source, "is not a number")
    if amount != amount.quantize(CENT):
        raise invalid(source, "must have no more than 2 decimal places")
    if positive and amount <= 0:
        raise invalid(source, "must be greater than 0")
    if amount < 0:
        raise invalid(source, "must be greater than or equal to 0")
    if abs(amount) >= Decimal("1e13"):
        raise invalid(source, "is too large")
    return int(amount * 100)


def quantity(value: Any, source: str) -> Decimal:
    if value is None or value == "":
        raise invalid(source, "can't be blank")
    if isinstance(value, bool | float):
        raise invalid(source, "is not a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise invalid(source, "is not a number") from None
    if not number.is_finite() or number <= 0:
        raise invalid(source, "must be greater than 0")
    return number


def amount_text(value_cents: int) -> str:
    """Cents as SBC shows amounts: a string with two decimals."""
    sign = "-" if value_cents < 0 else ""
    whole, part = divmod(abs(value_cents), 100)
    return f"{sign}{whole}.{part:02d}"


def amount_number(value_cents: int) -> float:
    """Cents as SBC's responses carry amounts: a JSON number (the published schema types
    every amount ``number``). Converted, not computed: the nearest double to
    ``value_cents / 100`` prints as exactly that two-decimal value (for any amount below
    2**53 cents), so a client reading the JSON with ``parse_float=Decimal`` gets the amount
    exactly. No arithmetic is done on it."""
    return float(Decimal(value_cents).scaleb(-2))


def round_cents(value: Decimal) -> int:
    """Half-up to a whole cent (``value`` in cents)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def iso_date(value: Any, source: str, *, required: bool = True) -> date | None:
    if value is None or value == "":
        if required:
            raise invalid(source, "can't be blank")
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise invalid(source, "is not a valid date (use YYYY-MM-DD)") from None


def since(value: str, source: str) -> datetime:
    """An ISO-8601 moment for ``updated_or_created_since``/``deleted_since``; naive is UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(source, "is not a valid ISO-8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def idempotency_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).lower()
    if not _HEX32.match(text.replace("-", "")):
        raise invalid("idempotency_id", "must be a GUID of 32 hexadecimal characters")
    return text.replace("-", "")


def text(value: Any, source: str, *, required: bool = False, limit: int = 255) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str | int):
        raise invalid(source, "must be text")
    result = str(value).strip()
    if required and not result:
        raise invalid(source, "can't be blank")
    if len(result) > limit:
        raise invalid(source, f"is too long (maximum is {limit} characters)")
    return result


def stamp(moment: datetime) -> str:
    """Timestamps as SBC writes them: UTC, whole seconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
