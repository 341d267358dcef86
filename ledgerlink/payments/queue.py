"""The inbox as a work queue: claim events with a lease, record what became of them.

A worker claims a handful of events (``received``, due, or ``processing`` with a lease
that ran out because the worker holding it died) and finishes each with one transaction
that writes the posting, the event's new status, the exception (if any) and the audit
entry together. A worker killed between posting to the ledger and that transaction
leaves the event to be claimed again; the retry posts with the same idempotency key, so
the ledger hands back the first posting and it is recorded once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from ledgerlink.payments import fairness
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.store import audit
from ledgerlink.store.db import Database
from ledgerlink.store.payment_models import PaymentEvent, PaymentException, PaymentPosting
from ledgerlink.store.types import utcnow

#: Events still to be worked on (``processing`` counts while its lease runs).
ACTIVE = ("received", "processing")
#: How an event ends well: posted, or (a hint) confirmed by PayTrace's record.
SETTLED_OK = ("posted", "confirmed")


@dataclass(frozen=True)
class ClaimedEvent:
    id: int
    connection_id: int | None
    source: str
    transaction_id: str
    kind: str
    payload: dict[str, Any]
    verified: bool
    attempts: int
    received_at: datetime
    #: a void for this sale is in the inbox too (it will not be posted)
    void_received: bool = False
    #: an exception row exists for it (opened by an earlier try)
    has_exception: bool = False


def _due(now: datetime) -> Any:
    return or_(
        and_(
            PaymentEvent.status == "received",
            or_(PaymentEvent.not_before.is_(None), PaymentEvent.not_before <= now),
        ),
        and_(PaymentEvent.status == "processing", PaymentEvent.claimed_until < now),
    )


def claim(db: Database, budgets: fairness.PairBudgets, lease_seconds: float) -> list[ClaimedEvent]:
    """Take due events for ``lease_seconds``: each pair's oldest, round-robin between
    pairs, as many of each as its budget has room for (:mod:`~ledgerlink.payments.fairness`)."""
    now = utcnow()
    with db.transaction() as session:
        ids = fairness.pick_due(session, now, budgets.room_for_new_claims)
        if ids and session.get_bind().dialect.name == "postgresql":
            # Another drain may have claimed some meanwhile: lock what is still due.
            ids = list(
                session.scalars(
                    select(PaymentEvent.id)
                    .where(PaymentEvent.id.in_(ids), _due(now))
                    .order_by(PaymentEvent.id)
                    .with_for_update(skip_locked=True)
                )
            )
        if not ids:
            return []
        session.execute(
            update(PaymentEvent)
            .where(PaymentEvent.id.in_(ids))
            .values(
                status="processing",
                claimed_until=now + timedelta(seconds=lease_seconds),
                attempts=PaymentEvent.attempts + 1,
            )
        )
        rows = session.scalars(
            select(PaymentEvent).where(PaymentEvent.id.in_(ids)).order_by(PaymentEvent.id)
        ).all()
        # What each event's processing would otherwise look up one by one.
        voids = {f"{row.transaction_id}:void" for row in rows if row.kind in ("sale", "capture")}
        voided = set(
            session.scalars(
                select(PaymentEvent.transaction_id).where(PaymentEvent.dedup_key.in_(voids))
            )
        )
        with_exception = set(
            session.scalars(
                select(PaymentException.event_id).where(PaymentException.event_id.in_(ids))
            )
        )
        return [
            ClaimedEvent(
                id=row.id,
                connection_id=row.connection_id,
                source=row.source,
                transaction_id=row.transaction_id,
                kind=row.kind,
                payload=dict(row.payload or {}),
                verified=row.verified,
                attempts=row.attempts,
                received_at=row.received_at,
                void_received=row.transaction_id in voided,
                has_exception=row.id in with_exception,
            )
            for row in rows
        ]


def has_due(db: Database) -> bool:
    with db.read() as session:
        return session.scalar(select(PaymentEvent.id).where(_due(utcnow())).limit(1)) is not None


def defer(session: Session, event_id: int, why: str, seconds: float) -> None:
    session.execute(
        update(PaymentEvent)
        .where(PaymentEvent.id == event_id)
        .values(
            status="received",
            claimed_until=None,
            not_before=utcnow() + timedelta(seconds=seconds),
            message=why,
        )
    )


def event_status(session: Session, dedup_key: str) -> str | None:
    return session.scalar(select(PaymentEvent.status).where(PaymentEvent.dedup_key == dedup_key))


def posting_by_key(session: Session, key: str) -> PaymentPosting | None:
    return session.scalar(select(PaymentPosting).where(PaymentPosting.idempotency_key == key))


def receipt_for(session: Session, transaction_id: str) -> PaymentPosting | None:
    """The newest receipt posted for a PayTrace sale (a won dispute posts it again)."""
    return session.scalar(
        select(PaymentPosting)
        .where(PaymentPosting.transaction_id == transaction_id, PaymentPosting.action == "receipt")
        .order_by(PaymentPosting.id.desc())
        .limit(1)
    )


def refunded_minor(session: Session, original_transaction_id: str) -> int:
    """How much of a sale's applied amount refunds have already re-opened."""
    rows = session.scalars(
        select(PaymentPosting.applied_minor).where(
            PaymentPosting.action == "refund",
            PaymentPosting.original_transaction_id == original_transaction_id,
        )
    ).all()
    return sum(rows)


@dataclass(frozen=True)
class RecordedPosting:
    """A posting the ledger made (or answered with, on a replay), as it is recorded."""

    ledger_connection_id: int
    system: str
    #: receipt | refund | reversal
    action: str
    idempotency_key: str
    ledger_id: str
    transaction_id: str
    original_transaction_id: str
    customer_id: str
    invoice_id: str
    invoice_number: str
    amount_minor: int
    applied_minor: int
    currency: str
    mapping_version: str
    replayed: bool

    def values(self) -> dict[str, Any]:
        """The ``payment_postings`` columns."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


@dataclass(frozen=True)
class Outcome:
    """What became of an event: ``status`` posted | ignored | exception, or for a hint
    confirmed | unverified."""

    status: str
    message: str
    postings: tuple[RecordedPosting, ...] = ()
    reversed_posting_id: int | None = None
    problem: PaymentProblem | None = None
    resolves_dispute_of: str | None = None


def finish(session: Session, event: ClaimedEvent, outcome: Outcome, actor: str) -> None:
    """Record ``outcome`` for ``event`` in ``session``'s transaction (postings, status,
    exception, audit). A posting whose key is already recorded is left as it is."""
    now = utcnow()
    written = [
        values
        for values in (posting.values() for posting in outcome.postings)
        if _insert_posting(session, {"event_id": event.id, "posted_at": now, **values})
    ]
    if outcome.reversed_posting_id is not None:
        session.execute(
            update(PaymentPosting)
            .where(PaymentPosting.id == outcome.reversed_posting_id)
            .values(reversed_at=now)
        )
    session.execute(
        _EVENT_DONE,
        {"event_id": event.id, "status": outcome.status, "message": outcome.message, "at": now},
    )
    problem = outcome.problem
    existing = (
        session.scalar(select(PaymentException).where(PaymentException.event_id == event.id))
        if problem is not None or event.has_exception
        else None
    )
    if problem is not None:
        _open_exception(session, event, existing, problem, now)
    elif existing is not None and existing.status == "open" and outcome.status in SETTLED_OK:
        existing.status = "resolved"
        existing.resolved_at = now
        existing.resolved_by = actor
        # what a person did (if anyone did), then what was posted: the reason it was opened
        # for belongs to an earlier try
        existing.resolution = (
            f"{existing.resolution}: {outcome.message}" if existing.resolution else outcome.message
        )
    if outcome.resolves_dispute_of:
        _close_dispute(session, outcome.resolves_dispute_of, actor, now)
    for values in written:
        audit.record(
            session,
            actor=actor,
            action=f"payment.{values['action']}",
            entity_type="payment_event",
            entity_id=event.id,
            after={
                "transaction_id": event.transaction_id,
                "kind": event.kind,
                **{name: values[name] for name in _AUDITED_POSTING},
            },
        )
    if problem is not None:
        audit.record(
            session,
            actor=actor,
            action="payment.exception",
            entity_type="payment_event",
            entity_id=event.id,
            after={"reason_code": problem.code, "reason": problem.reason},
        )


#: What the audit chain keeps of each posting.
_AUDITED_POSTING = (
    "system",
    "ledger_id",
    "idempotency_key",
    "invoice_number",
    "amount_minor",
    "applied_minor",
    "currency",
    "mapping_version",
)


def _insert_posting(session: Session, values: dict[str, Any]) -> bool:
    """Insert a posting unless its idempotency key is recorded already; True if new."""
    statement = _INSERT_POSTING[session.get_bind().dialect.name == "postgresql"]
    if session.execute(statement, values).scalar() is not None:
        return True
    if posting_by_key(session, values["idempotency_key"]) is None:
        raise RuntimeError(f"posting {values['idempotency_key']} could not be recorded")
    return False


def _insert_once(postgresql: bool) -> Any:
    # Built once and run with parameters; see inbox._insert_event for the two forms.
    table: Table = PaymentPosting.__table__  # type: ignore[assignment]
    if postgresql:
        from sqlalchemy.dialects.postgresql import insert

        return (
            insert(table)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(table.c.id)
        )
    from sqlalchemy import insert as core_insert

    return core_insert(table).prefix_with("OR IGNORE").returning(table.c.id)


_INSERT_POSTING = {False: _insert_once(False), True: _insert_once(True)}
_EVENTS: Table = PaymentEvent.__table__  # type: ignore[assignment]
_EVENT_DONE = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .values(
        status=bindparam("status"),
        message=bindparam("message"),
        processed_at=bindparam("at"),
        claimed_until=None,
        not_before=None,
    )
)
#: The plan written on the event before it is executed (see posting.py).
SAVE_PAYLOAD = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .values(payload=bindparam("payload"))
)


def _open_exception(
    session: Session,
    event: ClaimedEvent,
    existing: PaymentException | None,
    problem: PaymentProblem,
    now: datetime,
) -> None:
    amount = event.payload.get("amount_minor")
    values = {
        "reason_code": problem.code,
        "reason": problem.reason,
        "fix": problem.fix,
        "critical": problem.critical,
        "invoice_number": str(event.payload.get("invoice_id") or "")[:64],
        "amount_minor": int(amount) if amount is not None else None,
        "currency": str(event.payload.get("currency") or "")[:3],
    }
    if existing is None:
        session.add(PaymentException(event_id=event.id, status="open", opened_at=now, **values))
        return
    for name, value in values.items():
        setattr(existing, name, value)
    if existing.status != "open":
        existing.status = "open"
        existing.opened_at = now
        existing.resolved_at = None
        existing.resolved_by = None
        existing.resolution = None
        existing.alerted_at = None


def _close_dispute(session: Session, transaction_id: str, actor: str, now: datetime) -> None:
    chargeback = session.scalar(
        select(PaymentException)
        .join(PaymentEvent, PaymentEvent.id == PaymentException.event_id)
        .where(
            PaymentEvent.dedup_key == f"{transaction_id}:chargeback",
            PaymentException.status == "open",
        )
    )
    if chargeback is not None:
        chargeback.status = "resolved"
        chargeback.resolved_at = now
        chargeback.resolved_by = actor
        chargeback.resolution = "Dispute won: the receipt was posted again"
