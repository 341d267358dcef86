"""Card payments as the payment specs read them, for mapping previews over real records.

A preview is worth trusting only if the spec sees what posting will hand it. Posting hands
a payment spec :meth:`CardPayment.mapping_source` — the amount as exact plain decimal text
from :class:`Money`, no card data at all — so previews are built the same way: from the
newest payments in ledgerlink's inbox, or (before the inbox has any) from PayTrace's own
transactions read now. PayTrace's raw export is not a mapping source: its amounts are JSON
numbers and it carries masked card numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.domain.accounts import CardTransaction
from ledgerlink.opaque import MappedRecord
from ledgerlink.payments.facts import CardPayment, from_payload
from ledgerlink.payments.poller import event_of
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentEvent

#: The event kinds posting runs a payment spec over (an authorization posts nothing).
MAPPED_KINDS = ("sale", "capture", "refund", "void", "chargeback", "dispute_won")
#: Read at most this many events to find ``limit`` previewable ones (declined sales and
#: garbled pushes are passed over).
_SCAN_FACTOR = 4


def _previewable(payment: CardPayment) -> bool:
    """Posting maps neither a declined card (nothing was collected) nor a voided sale."""
    return not payment.declined and not (payment.voided and payment.kind in ("sale", "capture"))


def inbox_records(session: Session, limit: int) -> list[MappedRecord]:
    """The newest ``limit`` payments in the inbox that posting would map, newest first, as
    the payment specs read them. Hints (unsigned pushes) are not payments and are left out."""
    currencies = {
        connection_id: str((settings or {}).get("currency") or "USD")
        for connection_id, settings in session.execute(
            select(Connection.id, Connection.settings)
        ).tuples()
    }
    events = session.execute(
        select(
            PaymentEvent.transaction_id,
            PaymentEvent.kind,
            PaymentEvent.payload,
            PaymentEvent.received_at,
            PaymentEvent.connection_id,
        )
        .where(
            PaymentEvent.verified.is_(True),
            PaymentEvent.kind.in_(MAPPED_KINDS),
            PaymentEvent.status != "unverified",
        )
        .order_by(PaymentEvent.id.desc())
        .limit(limit * _SCAN_FACTOR)
    ).all()
    records: list[MappedRecord] = []
    for transaction_id, kind, payload, received_at, connection_id in events:
        currency = currencies.get(connection_id, "USD") if connection_id else "USD"
        try:
            payment = from_payload(
                transaction_id, kind, dict(payload or {}), received_at.date(), currency
            )
        except PaymentProblem:  # an amount that is no amount: posting stops before the spec
            continue
        if _previewable(payment):
            records.append(payment.mapping_source())
        if len(records) >= limit:
            break
    return records


def transaction_records(
    transactions: Iterable[CardTransaction], limit: int, currency: str = "USD"
) -> list[MappedRecord]:
    """PayTrace's transactions (read now) as the payment specs would read them once polled:
    newest (largest id) first, through the same inbox payload posting starts from."""

    def newest_first(transaction: CardTransaction) -> tuple[int, str]:
        return (int(transaction.id) if transaction.id.isdigit() else -1, transaction.id)

    records: list[MappedRecord] = []
    for transaction in sorted(transactions, key=newest_first, reverse=True):
        event = event_of(transaction, 0)
        if event.kind not in MAPPED_KINDS:
            continue
        on = transaction.created_at or transaction.settled_at or datetime.now(UTC)
        payment = from_payload(
            event.transaction_id, event.kind, dict(event.payload), on.date(), currency
        )
        if _previewable(payment):
            records.append(payment.mapping_source())
        if len(records) >= limit:
            break
    return records


__all__ = ["MAPPED_KINDS", "inbox_records", "transaction_records"]
