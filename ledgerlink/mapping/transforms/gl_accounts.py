"""GL account mapping: which ledger account a transaction posts to, chosen by its
transaction type (sale, refund, fee, chargeback) and payment method, from a table
finance edits (``gl_accounts`` in the payment specs)."""

from __future__ import annotations

from typing import Any, Final

from ledgerlink.mapping.errors import MappingValueError
from ledgerlink.mapping.tables import LookupTable

TRANSACTION_TYPES: Final = ("sale", "refund", "fee", "chargeback")
PAYMENT_METHODS: Final = ("card", "ach", "cash", "check", "other")

_TYPE_ALIASES: Final[dict[str, str]] = {
    "sale": "sale",
    "capture": "sale",
    "authorization": "sale",
    "void": "sale",  # a void reverses the sale, on the sale's accounts
    "receipt": "sale",
    "payment": "sale",
    "refund": "refund",
    "credit": "refund",
    "fee": "fee",
    "chargeback": "chargeback",
    "dispute": "chargeback",
}

_METHOD_ALIASES: Final[dict[str, str]] = {
    "card": "card",
    "credit_card": "card",
    "credit_debit": "card",
    "credit": "card",
    "debit": "card",
    "visa": "card",
    "mastercard": "card",
    "amex": "card",
    "discover": "card",
    "ach": "ach",
    "echeck": "ach",
    "bank_transfer": "ach",
    "cash": "cash",
    "check": "check",
    "cheque": "check",
}


_SEEN_TYPES: dict[str, str] = {}
_SEEN_METHODS: dict[str, str] = {}


def transaction_type(raw: Any) -> str:
    """PayTrace ``SALE``/``CAPTURE``/``VOID`` → sale, ``REFUND`` → refund, and so on."""
    if type(raw) is str and raw in _SEEN_TYPES:
        return _SEEN_TYPES[raw]
    key = str(raw or "").strip().lower().replace(" ", "_").replace("-", "_")
    found = _TYPE_ALIASES.get(key)
    if found is None:
        raise MappingValueError(
            f"transaction type {raw!r} is not one of {', '.join(TRANSACTION_TYPES)}",
            "map it in the source or add it to the GL account table",
        )
    if type(raw) is str and len(_SEEN_TYPES) < 256:
        _SEEN_TYPES[raw] = found
    return found


def payment_method(raw: Any) -> str:
    """Canonical payment method; unknown methods become ``other`` (a table row can map it)."""
    if type(raw) is str and raw in _SEEN_METHODS:
        return _SEEN_METHODS[raw]
    key = str(raw or "").strip().lower().replace(" ", "_").replace("-", "_")
    found = _METHOD_ALIASES.get(key, "other" if key else "card")
    if type(raw) is str and len(_SEEN_METHODS) < 256:
        _SEEN_METHODS[raw] = found
    return found


def gl_account_for(table: LookupTable, kind: Any, method: Any, column: str = "gl_account") -> str:
    """The GL account for a transaction of ``kind`` paid by ``method``."""
    found = table.get(column, transaction_type(kind), payment_method(method))
    if found is None or str(found).strip() == "":
        raise MappingValueError(
            f"the {table.name} row for {kind!r}/{method!r} has no {column}",
            f"fill in the {column} column in the {table.name} table",
        )
    return str(found).strip()
