"""The kinds of break a reconciliation reports, each with the words finance uses for it
and what usually fixes it (shown in the portal, the CLI and the digest)."""

from __future__ import annotations

from enum import StrEnum


class BreakType(StrEnum):
    """Why something did not reconcile. The value is stored; ``label`` and ``fix`` are
    shown."""

    missing_receipt = "missing_receipt"
    orphan_receipt = "orphan_receipt"
    receipt_for_reversed = "receipt_for_reversed"
    amount_mismatch = "amount_mismatch"
    duplicate_receipt = "duplicate_receipt"
    batch_ledger_mismatch = "batch_ledger_mismatch"
    deposit_mismatch = "deposit_mismatch"
    deposit_in_transit = "deposit_in_transit"
    unknown_credit = "unknown_credit"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def fix(self) -> str:
        return _FIXES[self]

    @property
    def side(self) -> str:
        """The side whose rows the break is about."""
        return _SIDES[self]


_LABELS = {
    BreakType.missing_receipt: "Approved in PayTrace, not in the ledger",
    BreakType.orphan_receipt: "Receipt in the ledger with no approved PayTrace transaction",
    BreakType.receipt_for_reversed: "Receipt for a sale voided or refunded since, not reversed",
    BreakType.amount_mismatch: "Receipt amount differs from the card transaction",
    BreakType.duplicate_receipt: "Receipt posted twice",
    BreakType.batch_ledger_mismatch: "Settlement batch total differs from the ledger's receipts",
    BreakType.deposit_mismatch: "Bank deposit differs from the batch net",
    BreakType.deposit_in_transit: "Deposit in transit: settled, not yet on a bank statement",
    BreakType.unknown_credit: "Unknown credit on the bank statement",
}

_FIXES = {
    BreakType.missing_receipt: (
        "Post the missing receipt (it goes through the payments path with the usual "
        "idempotency key, so it can never post twice)."
    ),
    BreakType.orphan_receipt: (
        "Check the receipt's reference against PayTrace; reverse it if no card payment was "
        "taken, or mark it explained (e.g. a cheque keyed as card)."
    ),
    BreakType.receipt_for_reversed: (
        "Reverse the receipt (or post the refund) in the ledger so it follows PayTrace."
    ),
    BreakType.amount_mismatch: (
        "Correct the receipt to the card amount, or post the difference on account."
    ),
    BreakType.duplicate_receipt: "Reverse the second receipt.",
    BreakType.batch_ledger_mismatch: (
        "Drill into the batch: compare its transactions with the receipts and PayTrace's "
        "batch report; mark explained with the reason once found."
    ),
    BreakType.deposit_mismatch: (
        "Compare the batch's fees and withheld chargebacks with the processor statement; "
        "post the difference as a fee adjustment or mark it explained."
    ),
    BreakType.deposit_in_transit: (
        "Usually nothing: import the next bank statement. Chase the processor if it is "
        "older than a few business days."
    ),
    BreakType.unknown_credit: (
        "Find who paid it (bank reference), then post it or mark it explained."
    ),
}

_SIDES = {
    BreakType.missing_receipt: "transactions",
    BreakType.orphan_receipt: "receipts",
    BreakType.receipt_for_reversed: "receipts",
    BreakType.amount_mismatch: "receipts",
    BreakType.duplicate_receipt: "receipts",
    BreakType.batch_ledger_mismatch: "batches",
    BreakType.deposit_mismatch: "deposits",
    BreakType.deposit_in_transit: "batches",
    BreakType.unknown_credit: "deposits",
}
