"""How each integration pair is doing: a PayTrace connection (merchant account) and the
ledger its payments post to.

With many pairs in one installation the totals hide the one pair in trouble (a ledger
that answers slowly, a PayTrace account whose password changed), so the dashboard and the
API show every pair on its own line: payments posted in the last hour, how many wait and
for how long, the latest problem in words, and a status finance can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledgerlink.connectors import registry
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentEvent, PaymentException, PaymentPollState
from ledgerlink.store.types import utcnow

PairStatus = Literal["ok", "behind", "failing"]

#: Payments posted over this window are the pair's throughput figure.
POSTED_WINDOW = timedelta(hours=1)
#: A pair whose oldest waiting payment is older than this is behind: payments normally
#: post within seconds, so a minute means they are queueing.
BEHIND_AFTER = timedelta(minutes=1)
#: ... and failing past this: something keeps them from being posted at all.
FAILING_AFTER = timedelta(minutes=15)
#: Exceptions opened over this window count as the pair's latest problem.
EXCEPTION_WINDOW = timedelta(hours=24)
WAITING = ("received", "processing")


@dataclass(frozen=True)
class PairHealth:
    gateway_id: int
    gateway: str
    ledger_id: int | None
    #: the ledger's name, or why there is none
    ledger: str
    posted_last_hour: int
    waiting: int
    oldest_waiting_seconds: float | None
    #: the latest problem in words ("" when there is none)
    last_error: str
    status: PairStatus
    #: the status in words, with what to do when it is not ok
    status_detail: str


def pair_health(session: Session, now: datetime | None = None) -> list[PairHealth]:
    """Every PayTrace connection with the ledger it posts to, by name."""
    now = now or utcnow()
    connections = session.scalars(select(Connection).order_by(Connection.name)).all()
    gateways = [c for c in connections if c.kind in registry.gateway_kinds()]
    if not gateways:
        return []
    ledgers = {c.id: c for c in connections if c.kind in registry.ledger_kinds()}
    active_ledgers = [c for c in ledgers.values() if c.is_active]
    ids = [g.id for g in gateways]

    posted: dict[int | None, int] = {
        row[0]: int(row[1])
        for row in session.execute(
            select(PaymentEvent.connection_id, func.count())
            .where(
                PaymentEvent.status == "posted",
                PaymentEvent.processed_at >= now - POSTED_WINDOW,
                PaymentEvent.connection_id.in_(ids),
            )
            .group_by(PaymentEvent.connection_id)
        ).all()
    }
    waiting = {
        row[0]: (int(row[1]), row[2])
        for row in session.execute(
            select(PaymentEvent.connection_id, func.count(), func.min(PaymentEvent.received_at))
            .where(PaymentEvent.status.in_(WAITING), PaymentEvent.connection_id.in_(ids))
            .group_by(PaymentEvent.connection_id)
        ).all()
    }
    polls = {
        state.connection_id: state
        for state in session.scalars(
            select(PaymentPollState).where(PaymentPollState.connection_id.in_(ids))
        )
    }
    retrying = _newest_retry_messages(session, ids)
    exceptions = _newest_open_exceptions(session, ids, now - EXCEPTION_WINDOW)

    found = []
    for gateway in gateways:
        ledger_id, ledger_name, ledger_problem = _ledger_of(gateway, ledgers, active_ledgers)
        count, oldest = waiting.get(gateway.id, (0, None))
        age = (now - oldest).total_seconds() if oldest is not None else None
        poll = polls.get(gateway.id)
        poll_error = (
            f"PayTrace poll at {poll.last_run_at:%H:%M:%S} UTC failed: {poll.last_error}"
            if poll is not None and poll.last_error and poll.last_run_at is not None
            else ""
        )
        last_error = (
            ledger_problem or poll_error or retrying.get(gateway.id) or exceptions.get(gateway.id)
        )
        status, detail = _status(ledger_problem, poll_error, retrying.get(gateway.id), age)
        found.append(
            PairHealth(
                gateway_id=gateway.id,
                gateway=gateway.name,
                ledger_id=ledger_id,
                ledger=ledger_name,
                posted_last_hour=int(posted.get(gateway.id, 0)),
                waiting=count,
                oldest_waiting_seconds=round(age, 1) if age is not None else None,
                last_error=last_error or "",
                status=status,
                status_detail=detail,
            )
        )
    return found


def _ledger_of(
    gateway: Connection, ledgers: dict[int, Connection], active: list[Connection]
) -> tuple[int | None, str, str]:
    """(ledger id, its name, the problem in words) as the payments path would choose it."""
    wanted = gateway.settings.get("post_to_connection_id")
    if wanted:
        ledger = ledgers.get(int(wanted))
        if ledger is None:
            return None, "—", "The ledger chosen for its payments no longer exists"
        return ledger.id, ledger.name, ""
    if len(active) == 1:
        return active[0].id, active[0].name, ""
    return None, "—", "It is not set which ledger its payments are posted to"


def _status(
    ledger_problem: str, poll_error: str, retrying: str | None, age: float | None
) -> tuple[PairStatus, str]:
    if ledger_problem:
        return "failing", "Choose the ledger under Accounting Integration → PayTrace → Post to"
    if age is not None and age >= FAILING_AFTER.total_seconds():
        return "failing", f"Payments have waited {_minutes(age)}: see the latest problem"
    if poll_error:
        return "failing", "New payments are not being read from PayTrace: check the connection"
    if age is not None and age >= BEHIND_AFTER.total_seconds():
        return "behind", f"The oldest payment has waited {_minutes(age)}"
    if retrying:
        return "behind", "Some payments are being tried again"
    return "ok", "Payments are posted as they come"


def _minutes(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def _newest_retry_messages(session: Session, ids: list[int]) -> dict[int, str]:
    """Per pair, the message of its newest waiting payment that was tried and put back
    (a ledger that did not answer, a rate limit)."""
    newest = (
        select(func.max(PaymentEvent.id))
        .where(
            PaymentEvent.status == "received",
            PaymentEvent.attempts > 0,
            PaymentEvent.message.is_not(None),
            PaymentEvent.connection_id.in_(ids),
        )
        .group_by(PaymentEvent.connection_id)
    )
    rows = session.execute(
        select(PaymentEvent.connection_id, PaymentEvent.message).where(PaymentEvent.id.in_(newest))
    ).all()
    return {int(c): str(m) for c, m in rows if c is not None and m}


def _newest_open_exceptions(session: Session, ids: list[int], since: datetime) -> dict[int, str]:
    """Per pair, the reason of its newest open exception opened since ``since``."""
    newest = (
        select(func.max(PaymentException.id))
        .join(PaymentEvent, PaymentEvent.id == PaymentException.event_id)
        .where(
            PaymentException.status == "open",
            PaymentException.opened_at >= since,
            PaymentEvent.connection_id.in_(ids),
        )
        .group_by(PaymentEvent.connection_id)
    )
    rows = session.execute(
        select(PaymentEvent.connection_id, PaymentException.reason)
        .join(PaymentEvent, PaymentEvent.id == PaymentException.event_id)
        .where(PaymentException.id.in_(newest))
    ).all()
    return {int(c): f"Exception: {r}" for c, r in rows if c is not None}
