"""A card payment as posting needs it, from an inbox event or PayTrace's own record.

Pushed events are brief and, for silent posts, unsigned: before anything is posted an
unverified event is replaced by what PayTrace's export says about the transaction
(:func:`from_transaction`), so a forged or garbled push can never move money.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from ledgerlink.domain.accounts import CardOutcome, CardTransaction, CardTransactionKind
from ledgerlink.domain.money import Money, MoneyError
from ledgerlink.payments.problems import PaymentProblem


@dataclass(frozen=True)
class CardPayment:
    transaction_id: str
    #: sale | capture | authorization | refund | void | chargeback | dispute_won
    kind: str
    amount: Money  # always positive; the kind says which way it goes
    invoice_number: str
    paytrace_customer_id: str
    on: dt.date
    approval_code: str = ""
    original_transaction_id: str = ""
    declined: bool = False
    #: PayTrace voided it (a sale read back after its void, or AVS/CSC rules, code 103)
    voided: bool = False
    response: str = ""
    settled: bool = False
    #: card, or ach (a PayTrace check; its id is kept as ``ach-<check id>``)
    method: str = "card"
    #: an ACH return's NACHA code (R01 …) and the bank's reason, as PayTrace exported them
    return_code: str = ""
    return_reason: str = ""

    def mapping_source(self) -> dict[str, Any]:
        """The transaction in PayTrace's export shape, which the payment specs read."""
        # an ACH return undoes the sale on the sale's accounts, as a void does
        kind = {
            "capture": "SALE",
            "dispute_won": "SALE",
            "chargeback": "CHARGEBACK",
            "return": "VOID",
        }.get(self.kind, self.kind.upper())
        return {
            "transaction_id": self.transaction_id,
            "transaction_type": kind,
            "amount": self.amount.format_plain(),
            "currency": self.amount.currency,
            "customer_id": self.paytrace_customer_id,
            "invoice_id": self.invoice_number,
            "approval_code": self.approval_code,
            "status": "approved" if self.kind in ("sale", "capture", "dispute_won") else None,
            "created": {"at": self.on.isoformat()},
            "payment_method": self.method,
        }


def _amount(text: str, currency: str) -> Money:
    try:
        return abs(Money.parse(Decimal(text.strip() or "x"), currency))
    except (InvalidOperation, MoneyError, ValueError):
        raise PaymentProblem(
            "mapping",
            f"The amount {text!r} of the payment is not an amount of {currency}",
            "Check the PayTrace notification; retry once PayTrace's record is readable.",
        ) from None


def from_payload(
    transaction_id: str, kind: str, payload: dict[str, Any], on: dt.date, currency: str
) -> CardPayment:
    """What a signed (or imported) event says, taken as it stands."""
    code = str(payload.get("response_code") or "")
    status = str(payload.get("status") or "").lower()
    return CardPayment(
        transaction_id=transaction_id,
        kind=kind,
        amount=_amount(str(payload.get("amount") or ""), payload.get("currency") or currency),
        invoice_number=str(payload.get("invoice_id") or "").strip(),
        paytrace_customer_id=str(payload.get("customer_id") or "").strip(),
        on=on,
        approval_code=str(payload.get("approval_code") or ""),
        original_transaction_id=str(payload.get("original_transaction_id") or "").strip(),
        declined=code == "102" or status == "declined",
        voided=code in ("103", "109") or status == "voided",
        response=str(payload.get("response") or ""),
        method=str(payload.get("method") or "card"),
        return_code=str(payload.get("return_code") or ""),
        return_reason=str(payload.get("return_reason") or ""),
    )


_SALE_KINDS = (CardTransactionKind.SALE, CardTransactionKind.CAPTURE, CardTransactionKind.VOID)


class NotBorneOut(Exception):
    """PayTrace's record does not bear out what a push said (another kind, not voided)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ReadBack:
    """A push checked against PayTrace's record: ``payment`` is PayTrace's version;
    ``disagreements`` say what the push claimed otherwise (in words, for the record)."""

    payment: CardPayment
    disagreements: tuple[str, ...] = ()


def from_transaction(claimed: CardPayment, transaction: CardTransaction) -> ReadBack:
    """``claimed`` checked against PayTrace's record of the transaction; PayTrace wins.

    A sale read back as voided is still the sale (voided later). A push of another kind
    than PayTrace has, or a void PayTrace has not made, is not borne out
    (:class:`NotBorneOut`); any other difference (the amount) is noted, and PayTrace's
    record is what the payment becomes.
    """
    expected = {
        "sale": _SALE_KINDS,
        "capture": _SALE_KINDS,
        "authorization": (CardTransactionKind.AUTHORIZATION, *_SALE_KINDS),
        "refund": (CardTransactionKind.REFUND, CardTransactionKind.VOID),
        "void": (*_SALE_KINDS, CardTransactionKind.AUTHORIZATION, CardTransactionKind.REFUND),
    }.get(claimed.kind)
    if expected is not None and transaction.kind not in expected:
        raise NotBorneOut(
            f"The notification says transaction {claimed.transaction_id} is a {claimed.kind}, "
            f"but PayTrace has it as a {transaction.kind.value}"
        )
    if claimed.kind == "void" and not transaction.voided:
        raise NotBorneOut(
            f"The notification says transaction {claimed.transaction_id} was voided, but "
            "PayTrace has it as not voided"
        )
    disagreements: tuple[str, ...] = ()
    if transaction.amount.minor != claimed.amount.minor and claimed.kind in (
        "sale",
        "capture",
        "authorization",
        "refund",
    ):
        disagreements = (
            f"the notification said {claimed.amount.format_plain()} "
            f"{claimed.amount.currency} but PayTrace has "
            f"{transaction.amount.format_plain()} {transaction.amount.currency}",
        )
    created = transaction.created_at.date() if transaction.created_at else claimed.on
    payment = replace(
        claimed,
        amount=transaction.amount if claimed.kind != "chargeback" else claimed.amount,
        invoice_number=transaction.invoice_number.strip() or claimed.invoice_number,
        paytrace_customer_id=transaction.customer_id.strip() or claimed.paytrace_customer_id,
        on=created,
        approval_code=transaction.approval_code or claimed.approval_code,
        original_transaction_id=transaction.original_id or claimed.original_transaction_id,
        declined=transaction.outcome is CardOutcome.DECLINED,
        voided=transaction.voided,
        response=transaction.status_message or claimed.response,
        settled=transaction.settled_at is not None,
    )
    return ReadBack(payment, disagreements)


def payload_of(payment: CardPayment, masked_card: str = "") -> dict[str, str]:
    """``payment`` as an inbox payload (the fields a verified event carries)."""
    payload = {
        "transaction_id": payment.transaction_id,
        "amount": payment.amount.format_plain(),
        "currency": payment.amount.currency,
        "invoice_id": payment.invoice_number,
        "customer_id": payment.paytrace_customer_id,
        "approval_code": payment.approval_code,
        "response": payment.response,
        "original_transaction_id": payment.original_transaction_id,
        "masked_card": masked_card,
        "response_code": "102" if payment.declined else "101",
        "status": "voided" if payment.voided else "",
    }
    return {name: value for name, value in payload.items() if value}
