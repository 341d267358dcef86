"""Payment status translation: a PayTrace transaction's status (approved, declined,
settled, voided, refunded) → the invoice payment state in Sage 500 and in SBC, and the
action ledgerlink takes, from the editable ``payment_status`` table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ledgerlink.mapping.errors import MappingValueError
from ledgerlink.mapping.tables import LookupTable

PAYTRACE_STATUSES: Final = ("approved", "declined", "settled", "voided", "refunded")
TARGETS: Final = ("sage500", "sbc", "action")

#: The shipped table (``specs/payment_status.yaml`` holds the same rows, editable).
DEFAULT_ROWS: Final[tuple[dict[str, str], ...]] = (
    {"paytrace_status": "approved", "sage500": "Applied", "sbc": "PAID", "action": "post_receipt"},
    {"paytrace_status": "settled", "sage500": "Applied", "sbc": "PAID", "action": "confirm"},
    {"paytrace_status": "declined", "sage500": "Open", "sbc": "UNPAID", "action": "exception"},
    {"paytrace_status": "voided", "sage500": "Open", "sbc": "UNPAID", "action": "reverse_receipt"},
    {"paytrace_status": "refunded", "sage500": "Open", "sbc": "UNPAID", "action": "post_refund"},
)

_DECLINED_CODES: Final = frozenset({"102"})
_VOIDED_CODES: Final = frozenset({"103", "109"})
_REFUND_CODES: Final = frozenset({"106"})


def default_table() -> LookupTable:
    return LookupTable.build("payment_status", ["paytrace_status"], TARGETS, DEFAULT_ROWS)


def paytrace_status(transaction: Mapping[str, Any] | None) -> str:
    """The status of a PayTrace transaction (export or response record).

    A record that already carries ``status`` as one of :data:`PAYTRACE_STATUSES` keeps it.
    Otherwise: VOID transactions and response codes 103/109 are voided; REFUND (106) is
    refunded; ``success: false`` or code 102 is declined; a ``settled`` time means
    settled; anything else is approved.
    """
    if type(transaction) is not dict and not isinstance(transaction, Mapping):
        raise MappingValueError("a PayTrace status needs the whole transaction record")
    given = transaction.get("status")
    if given is not None:
        given = str(given).strip().lower()
        if given in PAYTRACE_STATUSES:
            return given
    kind = transaction.get("transaction_type")
    kind = kind.upper() if type(kind) is str else str(kind or "").upper()
    code = transaction.get("response_code") or transaction.get("status_code")
    code = "" if code is None else str(code)
    if kind == "VOID" or code in _VOIDED_CODES:
        return "voided"
    if kind == "REFUND" or code in _REFUND_CODES:
        return "refunded"
    if transaction.get("success") is False or code in _DECLINED_CODES:
        return "declined"
    if str(transaction.get("settled") or "").strip():
        return "settled"
    return "approved"


def translate_status(table: LookupTable, status: Any, target: str) -> str:
    """The ``target`` column (``sage500``, ``sbc`` or ``action``) for ``status``."""
    if target not in table.values:
        raise MappingValueError(
            f"table {table.name} has no column {target!r}; it has {', '.join(table.values)}"
        )
    key = str(status or "").strip().lower()
    found = table.get(target, key)
    if found is None or str(found) == "":
        raise MappingValueError(
            f"status {key!r} has no {target} state in table {table.name}",
            f"fill in the {target} column for {key!r}",
        )
    return str(found)
