"""The PayTrace poller: what no push delivered, the exports and settlement batches bring.

Every ``poll_interval_seconds`` per PayTrace connection: the transactions exported from
the cursor minus the overlap window (PayTrace exports by whole days in the account's
time zone, so the window is widened by a day on each side), then every settlement batch
not seen before and its transactions. Each becomes a verified inbox event — read from
PayTrace itself — deduplicated against what the pushes already stored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading, writing
from ledgerlink.connectors import registry
from ledgerlink.connectors.base import AchGateway
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.domain.accounts import CardOutcome, CardTransaction, CardTransactionKind
from ledgerlink.domain.checks import CheckTransaction
from ledgerlink.payments.ach import events_of
from ledgerlink.payments.enqueue import request_processing
from ledgerlink.payments.inbox import InboundEvent, accept
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentPollState
from ledgerlink.store.types import utcnow

log = structlog.get_logger("ledgerlink.payments.poller")

_KINDS = {
    CardTransactionKind.SALE: "sale",
    CardTransactionKind.CAPTURE: "capture",
    CardTransactionKind.AUTHORIZATION: "authorization",
    CardTransactionKind.REFUND: "refund",
    CardTransactionKind.VOID: "void",
}
#: Settlement batches remembered per connection (older ones are outside any window).
_BATCHES_KEPT = 400


@dataclass(frozen=True)
class PollResult:
    connection_id: int
    read: int
    new: int
    batches: int
    error: str | None = None


def event_of(transaction: CardTransaction, connection_id: int) -> InboundEvent:
    """A transaction from an export as an inbox event (verified: PayTrace said it)."""
    payload = {
        "transaction_id": transaction.id,
        "amount": transaction.amount.format_plain(),
        "currency": transaction.amount.currency,
        "invoice_id": transaction.invoice_number,
        "customer_id": transaction.customer_id,
        "approval_code": transaction.approval_code,
        "response": transaction.status_message,
        "original_transaction_id": transaction.original_id,
        "masked_card": transaction.masked_card,
        "response_code": "102" if transaction.outcome is CardOutcome.DECLINED else "",
    }
    return InboundEvent(
        "poller",
        transaction.id,
        _KINDS.get(transaction.kind, "sale"),
        {name: value for name, value in payload.items() if value},
        verified=True,
        connection_id=connection_id,
    )


async def poll_connection(runtime: Runtime, connection: Connection) -> PollResult:
    """One poll of one PayTrace connection; records its cursor and any error."""
    settings = connection.settings
    now = utcnow()
    cursor, seen = await reading(runtime.db, lambda session: _poll_state(session, connection.id))
    overlap = timedelta(minutes=int(settings.get("poll_overlap_minutes", 15)))
    since = (cursor - overlap) if cursor is not None else now - timedelta(days=1)
    start, end = (since - timedelta(days=1)).date(), (now + timedelta(days=1)).date()
    read = new = batches = 0
    error: str | None = None
    try:
        gateway = runtime.gateway_for(connection)
        try:
            found = list(await gateway.transactions(start, end))
            # ACH payments (PayTrace checks) and their returns, from the checks export
            checks: list[CheckTransaction] = (
                await gateway.checks(start, end) if isinstance(gateway, AchGateway) else []
            )
            for batch in await gateway.batches(start, end):
                if batch.number and batch.number not in seen:
                    found.extend(await gateway.batch_transactions(batch.number))
                    seen[batch.number] = batch.count
                    batches += 1
        finally:
            await gateway.aclose()
        read = len(found) + len(checks)
        events = [event_of(t, connection.id) for t in found if t.id]
        events += [
            event for check in checks if check.id for event in events_of(check, connection.id)
        ]

        def store(session: Session) -> int:
            stored = sum(1 for event in events if accept(session, event)[1])
            if stored:
                request_processing(runtime.jobs, session)
            return stored

        new = await writing(runtime.db, store)
    except UpstreamError as exc:
        error = exc.message
    kept = dict(sorted(seen.items(), key=lambda item: item[0])[-_BATCHES_KEPT:])

    def record(session: Session) -> None:
        state = session.get(PaymentPollState, connection.id)
        if state is None:
            state = PaymentPollState(connection_id=connection.id, last_found=0, batches_seen={})
            session.add(state)
        state.last_run_at = now
        state.last_error = error
        if error is None:
            state.cursor = now
            state.last_found = new
            state.batches_seen = kept

    await writing(runtime.db, record)
    log.info("payments.polled", connection_id=connection.id, read=read, new=new, error=error)
    return PollResult(connection.id, read, new, batches, error)


#: PayTrace connections polled at once: one account answering slowly (or not at all)
#: must not hold up the others' payments.
POLLS_AT_ONCE = 16


async def poll_due(runtime: Runtime, *, force: bool = False) -> list[PollResult]:
    """Poll every PayTrace connection whose interval has passed (all of them: ``force``),
    side by side."""
    due = await reading(runtime.db, lambda session: _due(session, utcnow(), force))
    gate = asyncio.Semaphore(POLLS_AT_ONCE)

    async def one(connection: Connection) -> PollResult:
        async with gate:
            return await poll_connection(runtime, connection)

    return list(await asyncio.gather(*(one(connection) for connection in due)))


def _poll_state(session: Session, connection_id: int) -> tuple[datetime | None, dict[str, Any]]:
    """A connection's cursor and the settlement batches it has seen."""
    state = session.get(PaymentPollState, connection_id)
    if state is None:
        return None, {}
    return state.cursor, dict(state.batches_seen)


def _due(session: Session, now: datetime, force: bool) -> list[Connection]:
    """The card gateway connections to poll now, detached from ``session``."""
    candidates = session.scalars(
        select(Connection).where(Connection.kind.in_(registry.gateway_kinds()))
    ).all()
    due = []
    for connection in candidates:
        settings = connection.settings
        if not force and not settings.get("polling", True):
            continue
        state = session.get(PaymentPollState, connection.id)
        interval = timedelta(seconds=int(settings.get("poll_interval_seconds", 60)))
        last = state.last_run_at if state is not None else None
        if force or last is None or now - last >= interval - timedelta(seconds=1):
            session.expunge(connection)
            due.append(connection)
    return due


__all__ = ["PollResult", "event_of", "poll_connection", "poll_due"]
