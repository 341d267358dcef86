"""Shared steps of every statement reader: bytes to text, text to exact money.

Both refuse with the line (and, for bytes, the offset) so a user can open the file at
the place that is wrong.
"""

from __future__ import annotations

import codecs
from decimal import Decimal, InvalidOperation

from ledgerlink.domain.money import Money, MoneyError, normalise_currency
from ledgerlink.recon.statements.errors import StatementError


def line_of_offset(data: bytes, offset: int) -> int:
    """1-based line number of byte ``offset`` in ``data``."""
    return data.count(b"\n", 0, offset) + 1


def decode(data: bytes, encoding: str, *, what: str) -> str:
    """``data`` as text, or a :class:`StatementError` naming the line and byte offset."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise StatementError(
            1,
            f"the {what} declares the encoding {encoding!r}, which is not known",
            "export the statement as UTF-8",
        ) from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        byte = data[exc.start : exc.start + 1].hex()
        raise StatementError(
            line_of_offset(data, exc.start),
            f"byte 0x{byte} at offset {exc.start} is not valid {encoding}",
            f"export the {what} again as UTF-8; the file may be damaged",
        ) from None
    return text.removeprefix("\ufeff")


def currency_code(code: str, line: int | None) -> str:
    try:
        return normalise_currency(code)
    except MoneyError as exc:
        raise StatementError(line, str(exc), "correct the currency code in the file") from None


def money(value: str | Decimal, currency: str, line: int | None, *, field: str) -> Money:
    """Exact money from a decimal amount; refuses more decimals than ``currency`` has."""
    if isinstance(value, str):
        candidate = value.strip()
        try:
            Decimal(candidate)
        except InvalidOperation:
            raise StatementError(
                line,
                f"{field} {value!r} is not a number",
                "the amount must be a plain decimal such as 1234.50",
            ) from None
        value = candidate
    try:
        return Money.parse(value, currency)
    except MoneyError as exc:
        raise StatementError(line, f"{field}: {exc}", "correct the amount in the file") from None
