"""Read models for the portal, the API and the CLI: payment events, the exceptions queue
and the dashboard's figures. Amounts are formatted from minor units, never floats."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from ledgerlink import overview
from ledgerlink.domain.money import Money, MoneyError
from ledgerlink.mapping.versions import VersionLabel, describe_version, saved_version
from ledgerlink.payments.problems import REASONS
from ledgerlink.payments.resolutions import allowed_actions
from ledgerlink.store.mapping_models import MappingVersion
from ledgerlink.store.member_models import MemberLinkRow
from ledgerlink.store.payment_models import (
    PaymentEvent,
    PaymentException,
    PaymentPosting,
)
from ledgerlink.store.types import utcnow


def _amount_text(payload: dict[str, Any]) -> str:
    text = str(payload.get("amount") or "")
    currency = str(payload.get("currency") or "USD")
    try:
        return Money.parse(Decimal(text), currency).format_display()
    except (ArithmeticError, MoneyError, ValueError):
        return text


@dataclass(frozen=True)
class EventRow:
    id: int
    transaction_id: str
    kind: str
    source: str
    amount: str
    invoice_number: str
    customer_id: str
    status: str
    message: str | None
    deliveries: int
    attempts: int
    received_at: datetime
    processed_at: datetime | None


def _event_row(event: PaymentEvent) -> EventRow:
    payload = dict(event.payload or {})
    plan = payload.get("plan") or {}
    return EventRow(
        id=event.id,
        transaction_id=event.transaction_id,
        kind=event.kind,
        source=event.source,
        amount=_amount_text(payload),
        invoice_number=str(plan.get("invoice_number") or payload.get("invoice_id") or ""),
        customer_id=str(payload.get("customer_id") or ""),
        status=event.status,
        message=event.message,
        deliveries=event.deliveries,
        attempts=event.attempts,
        received_at=event.received_at,
        processed_at=event.processed_at,
    )


def recent_events(
    session: Session, *, status: str | None = None, limit: int = 50, search: str = ""
) -> list[EventRow]:
    """The newest events, newest first. A hint PayTrace confirmed is left out unless asked
    for by its status: the event it brought (PayTrace's record) is the payment."""
    query = select(PaymentEvent).order_by(PaymentEvent.id.desc()).limit(limit)
    if status:
        query = query.where(PaymentEvent.status == status)
    else:
        query = query.where(PaymentEvent.status != "confirmed")
    if search.strip():
        query = query.where(PaymentEvent.transaction_id == search.strip())
    return [_event_row(event) for event in session.scalars(query)]


def event_detail(session: Session, event_id: int) -> dict[str, Any] | None:
    event = session.get(PaymentEvent, event_id)
    if event is None:
        return None
    postings = session.scalars(
        select(PaymentPosting).where(PaymentPosting.event_id == event_id)
    ).all()
    exception = session.scalar(
        select(PaymentException).where(PaymentException.event_id == event_id)
    )
    return {
        "event": _event_row(event),
        "postings": [
            {
                "action": p.action,
                "system": p.system,
                "ledger_id": p.ledger_id,
                "idempotency_key": p.idempotency_key,
                "invoice_number": p.invoice_number,
                "amount": Money(p.amount_minor, p.currency).format_display(),
                "applied": Money(p.applied_minor, p.currency).format_display(),
                "mapping_version": p.mapping_version,
                "posted_at": p.posted_at,
                "reversed_at": p.reversed_at,
            }
            for p in postings
        ],
        "exception": exception_row(exception, event) if exception is not None else None,
    }


def mapping_labels(session: Session, refs: Iterable[str]) -> dict[str, VersionLabel]:
    """The mapping versions postings name (``name@v3``, ``name@package:…``) in words, with
    who saved each version saved in ledgerlink."""
    wanted = {ref for ref in refs if ref}
    saved = {found for found in map(saved_version, wanted) if found is not None}
    authors: dict[tuple[str, int], str] = {}
    if saved:
        rows = session.execute(
            select(MappingVersion.name, MappingVersion.version, MappingVersion.author).where(
                MappingVersion.name.in_({name for name, _ in saved}),
                MappingVersion.version.in_({version for _, version in saved}),
            )
        ).tuples()
        authors = {(name, version): author for name, version, author in rows}
    labels = {}
    for ref in wanted:
        key = saved_version(ref)
        labels[ref] = describe_version(ref, authors.get(key) if key is not None else None)
    return labels


@dataclass(frozen=True)
class ExceptionRow:
    id: int
    event_id: int
    transaction_id: str
    kind: str
    reason_code: str
    reason_label: str
    reason: str
    fix: str
    status: str
    critical: bool
    invoice_number: str
    amount: str
    customer_id: str
    opened_at: datetime
    resolved_by: str | None
    resolution: str | None
    actions: tuple[str, ...]


def exception_row(found: PaymentException, event: PaymentEvent) -> ExceptionRow:
    payload = dict(event.payload or {})
    return ExceptionRow(
        id=found.id,
        event_id=found.event_id,
        transaction_id=event.transaction_id,
        kind=event.kind,
        reason_code=found.reason_code,
        reason_label=REASONS.get(found.reason_code, found.reason_code),
        reason=found.reason,
        fix=found.fix,
        status=found.status,
        critical=found.critical,
        invoice_number=found.invoice_number or str(payload.get("invoice_id") or ""),
        amount=_amount_text(payload),
        customer_id=str(payload.get("customer_id") or ""),
        opened_at=found.opened_at,
        resolved_by=found.resolved_by,
        resolution=found.resolution,
        actions=allowed_actions(found.reason_code) if found.status == "open" else (),
    )


def exception_rows(
    session: Session, *, status: str | None = "open", reason: str | None = None, limit: int = 200
) -> list[ExceptionRow]:
    query = (
        select(PaymentException, PaymentEvent)
        .join(PaymentEvent, PaymentEvent.id == PaymentException.event_id)
        .order_by(PaymentException.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(PaymentException.status == status)
    if reason:
        query = query.where(PaymentException.reason_code == reason)
    return [exception_row(found, event) for found, event in session.execute(query).tuples()]


def disputed_invoices(session: Session) -> set[str]:
    """Invoice numbers with an open chargeback (shown as *in dispute*)."""
    rows = session.scalars(
        select(PaymentException.invoice_number).where(
            PaymentException.reason_code == "chargeback",
            PaymentException.status == "open",
            PaymentException.invoice_number != "",
        )
    )
    return set(rows)


#: What a reversal ledgerlink posted undid, as the member's history names it (a ledger
#: lists a chargeback and a voided sale's reversal as refunds: money going back).
_REVERSAL_WORDS = {
    "chargeback": "chargeback",
    "void": "void (receipt reversed)",
    "return": "ACH return (receipt reversed)",
}


def card_reversals(session: Session, member_id: int) -> dict[tuple[int, str], str]:
    """The member's ledger documents that are ledgerlink's reversals of a card receipt,
    ``(ledger connection id, ledger id) → what they are`` ("chargeback", "void …")."""
    rows = session.execute(
        select(PaymentPosting.ledger_connection_id, PaymentPosting.ledger_id, PaymentEvent.kind)
        .join(PaymentEvent, PaymentEvent.id == PaymentPosting.event_id)
        .join(
            MemberLinkRow,
            and_(
                MemberLinkRow.connection_id == PaymentPosting.ledger_connection_id,
                MemberLinkRow.customer_id == PaymentPosting.customer_id,
            ),
        )
        .where(MemberLinkRow.member_id == member_id, PaymentPosting.action == "reversal")
    ).tuples()
    return {
        (connection_id, ledger_id): _REVERSAL_WORDS[kind]
        for connection_id, ledger_id, kind in rows
        if kind in _REVERSAL_WORDS and connection_id is not None
    }


@dataclass(frozen=True)
class Health:
    name: str
    kind: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Dashboard:
    payments_today: int
    amount_today: str
    posted_today: int
    pending: int
    exceptions_open: int
    critical_open: int
    lag_p50_seconds: float | None
    lag_p99_seconds: float | None
    health: list[Health]
    #: silent posts in 24 h that PayTrace did not bear out (kept apart, posted nothing)
    unverified_today: int = 0


def dashboard(session: Session, now: datetime | None = None) -> Dashboard:
    now = now or utcnow()
    since = now - timedelta(hours=24)
    today = session.execute(
        select(PaymentEvent.status, PaymentEvent.payload, PaymentEvent.kind).where(
            PaymentEvent.received_at >= since,
            PaymentEvent.kind.in_(("sale", "capture")),
            PaymentEvent.verified.is_(True),  # a hint is not a payment; its read-back is
        )
    ).all()
    unverified = session.scalar(
        select(func.count())
        .select_from(PaymentEvent)
        .where(PaymentEvent.received_at >= since, PaymentEvent.status == "unverified")
    )
    posted = session.execute(
        select(PaymentEvent.received_at, PaymentEvent.processed_at).where(
            PaymentEvent.status == "posted", PaymentEvent.processed_at >= since
        )
    ).all()
    lags = [(done - received).total_seconds() for received, done in posted if done and received]
    open_counts = overview.open_exceptions(session)
    return Dashboard(
        payments_today=len(today),
        amount_today=overview.amount_total(payload for _, payload, _ in today),
        posted_today=len(posted),
        pending=overview.pending_events(session),
        exceptions_open=sum(open_counts.values()),
        critical_open=open_counts.get(True, 0),
        lag_p50_seconds=overview.percentile(lags, 0.5),
        lag_p99_seconds=overview.percentile(lags, 0.99),
        health=upstream_health(session),
        unverified_today=int(unverified or 0),
    )


def upstream_health(session: Session) -> list[Health]:
    """The dashboard's judgement (``overview``: recent failed calls count, e-mail is judged
    by its SMTP settings), so the Payments page and the API say the same as the dashboard."""
    found = [Health(h.name, h.kind, h.ok, h.detail) for h in overview.upstream_health(session)]
    mail = overview.mail_health(session)
    if mail is not None:
        found.append(Health(mail.name, mail.kind, mail.ok, mail.detail))
    return found
