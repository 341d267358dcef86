"""What will be written to the ledger for one payment event: the plan.

Planning (:mod:`ledgerlink.payments.planning`) decides a plan; it is checkpointed on the
event as JSON before anything is posted, and execution
(:mod:`ledgerlink.payments.execution`) posts exactly that plan. A retry after a crash
reads the checkpoint back and posts the same plan again (the ledger answers with the
first posting), so :meth:`to_json` and :func:`plan_from_json` must keep reading the
plans earlier versions stored: the JSON shape below is the one those versions wrote
(``action``, ``key``, ``amount_minor``, ``apply_minor``, ``date`` …), kept key for key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Self

from ledgerlink.domain.money import Money

#: A plan as stored on the event (``payload["plan"]``).
PlanJson = dict[str, Any]


@dataclass(frozen=True)
class PlannedPosting:
    """What every plan says: where it posts, under which key, for whom, how much, and what
    the payment spec decided (date, GL account, reference, and the spec's version)."""

    ledger_connection_id: int
    #: the ledger connection's kind, recorded with the posting
    system: str
    #: the idempotency key, ``paytrace:<transaction>:<kind>``
    key: str
    transaction_id: str
    customer_id: str
    invoice_id: str
    invoice_number: str
    amount: Money
    #: how much is applied to (a receipt) or re-opened on (a refund, reversal) the invoice
    applied: Money
    on: dt.date
    gl_account: str
    reference: str
    mapping_version: str
    #: where PayTrace's record differed from what the event claimed ("" when it did not)
    disagreement: str = ""
    #: card or ach; an ACH receipt also names the ledger's ACH payment method and the bank
    #: account it is paid into (the ledger connection's ``payment_methods.ach``; "" = the
    #: ledger's default)
    payment_method: str = "card"
    payment_method_id: str = ""
    bank_account_id: str = ""

    action = ""

    def with_disagreement(self, disagreement: str) -> Self:
        return replace(self, disagreement=disagreement)

    def to_json(self) -> PlanJson:
        """The plan as checkpointed on the event (the shape earlier versions wrote)."""
        data: PlanJson = {
            "action": self.action,
            "ledger_connection_id": self.ledger_connection_id,
            "system": self.system,
            "key": self.key,
            "transaction_id": self.transaction_id,
            "original_transaction_id": "",
            "customer_id": self.customer_id,
            "invoice_id": self.invoice_id,
            "invoice_number": self.invoice_number,
            "amount_minor": self.amount.minor,
            "apply_minor": self.applied.minor,
            "currency": self.amount.currency,
            "date": self.on.isoformat(),
            "gl_account": self.gl_account,
            "reference": self.reference,
            "mapping_version": self.mapping_version,
        }
        if self.disagreement:
            data["disagreement"] = self.disagreement
        if self.payment_method != "card":  # card plans keep the shape earlier versions wrote
            data["payment_method"] = self.payment_method
            data["payment_method_id"] = self.payment_method_id
            data["bank_account_id"] = self.bank_account_id
        return data

    @classmethod
    def _common(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        currency = str(data["currency"])
        return {
            "ledger_connection_id": int(data["ledger_connection_id"]),
            "system": str(data.get("system") or ""),
            "key": str(data["key"]),
            "transaction_id": str(data["transaction_id"]),
            "customer_id": str(data.get("customer_id") or ""),
            "invoice_id": str(data.get("invoice_id") or ""),
            "invoice_number": str(data.get("invoice_number") or ""),
            "amount": Money(int(data["amount_minor"]), currency),
            "applied": Money(int(data.get("apply_minor") or 0), currency),
            "on": dt.date.fromisoformat(str(data["date"])),
            "gl_account": str(data.get("gl_account") or ""),
            "reference": str(data.get("reference") or ""),
            "mapping_version": str(data.get("mapping_version") or ""),
            "disagreement": str(data.get("disagreement") or ""),
            "payment_method": str(data.get("payment_method") or "card"),
            "payment_method_id": str(data.get("payment_method_id") or ""),
            "bank_account_id": str(data.get("bank_account_id") or ""),
        }


@dataclass(frozen=True)
class ReceiptPlan(PlannedPosting):
    """A card sale (or capture) posted as a receipt, applied to its invoice up to what is
    open there; the rest stays on the customer's account."""

    action = "receipt"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReceiptPlan:
        return cls(**cls._common(data))


@dataclass(frozen=True)
class DisputeWonPlan(ReceiptPlan):
    """A won dispute: the receipt a chargeback reversed, posted again; posting it closes
    the chargeback's exception."""

    #: the PayTrace transaction whose dispute this resolves
    resolves_dispute_of: str = ""

    def to_json(self) -> PlanJson:
        return {**super().to_json(), "resolves_dispute_of": self.resolves_dispute_of}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DisputeWonPlan:
        return cls(**cls._common(data), resolves_dispute_of=str(data["resolves_dispute_of"]))


@dataclass(frozen=True)
class RefundPlan(PlannedPosting):
    """A card refund posted as a customer refund; where the ledger's refunds re-open
    invoices, it re-opens the sale's invoice by what the sale had applied and earlier
    refunds have not re-opened yet."""

    #: the sale refunded ("" for a refund that names none)
    original_transaction_id: str = ""

    action = "refund"

    def to_json(self) -> PlanJson:
        return {**super().to_json(), "original_transaction_id": self.original_transaction_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RefundPlan:
        return cls(
            **cls._common(data),
            original_transaction_id=str(data.get("original_transaction_id") or ""),
        )


@dataclass(frozen=True)
class ReversalPlan(PlannedPosting):
    """A void or a chargeback: the sale's receipt is undone in the ledger, re-opening
    what it applied less what refunds re-opened already."""

    #: our posting row of the receipt (marked reversed when this is recorded)
    receipt_posting_id: int = 0
    #: the ledger's id of the receipt
    receipt_ledger_id: str = ""
    #: a chargeback (opens an exception: the dispute is to be answered) rather than a void
    chargeback: bool = False
    #: an ACH return's NACHA code (R01 …) and the bank's reason: opens an exception too
    return_code: str = ""
    return_reason: str = ""

    action = "reversal"

    def to_json(self) -> PlanJson:
        return {
            **super().to_json(),
            "original_transaction_id": self.transaction_id,
            "receipt_posting_id": self.receipt_posting_id,
            "receipt_ledger_id": self.receipt_ledger_id,
            "chargeback": self.chargeback,
            **(
                {"return_code": self.return_code, "return_reason": self.return_reason}
                if self.return_code
                else {}
            ),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReversalPlan:
        return cls(
            **cls._common(data),
            receipt_posting_id=int(data["receipt_posting_id"]),
            receipt_ledger_id=str(data["receipt_ledger_id"]),
            chargeback=bool(data.get("chargeback")),
            return_code=str(data.get("return_code") or ""),
            return_reason=str(data.get("return_reason") or ""),
        )


Plan = ReceiptPlan | DisputeWonPlan | RefundPlan | ReversalPlan


class UnreadablePlan(ValueError):
    """A checkpointed plan this version cannot read (an unknown action)."""


def plan_from_json(data: Mapping[str, Any]) -> Plan:
    """The plan checkpointed on an event, whichever version wrote it."""
    action = data.get("action")
    if action == "receipt":
        if data.get("resolves_dispute_of"):
            return DisputeWonPlan.from_json(data)
        return ReceiptPlan.from_json(data)
    if action == "refund":
        return RefundPlan.from_json(data)
    if action == "reversal":
        return ReversalPlan.from_json(data)
    raise UnreadablePlan(f"unknown plan action {action!r}")


__all__ = [
    "DisputeWonPlan",
    "Plan",
    "PlanJson",
    "PlannedPosting",
    "ReceiptPlan",
    "RefundPlan",
    "ReversalPlan",
    "UnreadablePlan",
    "plan_from_json",
]
