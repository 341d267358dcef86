"""Why a payment could not be posted, in words a finance operator can act on.

A :class:`PaymentProblem` becomes a row in the exceptions queue: ``reason`` says what
happened ("Invoice 0000001234-IN is not in Sage 500"), ``fix`` what to do about it.
:class:`Deferred` is not a problem: the event waits (an out-of-order refund for a sale
not posted yet, an upstream that is briefly down) and is tried again by itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PaymentProblem(Exception):
    """The payment needs a person. ``critical`` ones are e-mailed at once."""

    code: str
    reason: str
    fix: str = ""
    critical: bool = False

    def __post_init__(self) -> None:
        super().__init__(self.reason)


@dataclass
class Deferred(Exception):
    """Try the event again after ``seconds``; ``why`` is shown while it waits."""

    why: str
    seconds: float = 2.0

    def __post_init__(self) -> None:
        super().__init__(self.why)


@dataclass
class Settled(Exception):
    """Nothing is to be posted for this event, for a reason worth recording."""

    why: str

    def __post_init__(self) -> None:
        super().__init__(self.why)


#: What each reason code means in the queue's filter and the dashboard.
REASONS: dict[str, str] = {
    "declined": "Card declined",
    "invoice_not_found": "Invoice not found",
    "invoice_closed": "Invoice already paid",
    "customer_mismatch": "Customer does not match",
    "amount_mismatch": "Amount above the open balance",
    "currency_mismatch": "Currency does not match",
    "period_closed": "Accounting period closed",
    "not_linked": "Customer not linked",
    "unverified": "Could not be verified with PayTrace",
    "upstream": "Ledger or gateway unavailable",
    "rejected": "Refused by the ledger",
    "configuration": "Set-up incomplete",
    "chargeback": "Chargeback (invoice in dispute)",
    "ach_return": "ACH payment returned by the bank",
    "mapping": "Mapping failed",
}
