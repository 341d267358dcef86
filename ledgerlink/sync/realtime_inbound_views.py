"""What the portal shows of real-time reads: a connection's polling and the split of its
request budget (connection page), and when a member last agreed with each ledger (member
page). Read-only; the pages call these with their read session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.connectors import registry as connectors
from ledgerlink.store.db import Database
from ledgerlink.store.member_models import MemberLinkRow
from ledgerlink.store.models import Connection
from ledgerlink.store.realtime_inbound_models import DEFAULT_INTERVAL_SECONDS, RealtimePoll
from ledgerlink.sync import live_feed, poll_budget
from ledgerlink.sync.realtime_inbound import rate_limit_of


@dataclass(frozen=True)
class PollingView:
    """A ledger connection's polling, for its page."""

    enabled: bool
    interval: int
    budget: poll_budget.BudgetSplit
    last_polled_at: datetime | None
    next_at: datetime | None
    last_outcome: str


def polling_view(session: Session, connection: Connection) -> PollingView | None:
    """``None`` for a connection that is not a ledger (PayTrace, SMTP)."""
    if connection.kind not in connectors.ledger_kinds():
        return None
    state = session.get(RealtimePoll, connection.id)
    interval = state.interval_seconds if state is not None else DEFAULT_INTERVAL_SECONDS
    effective = state.effective_seconds if state is not None else interval
    last_requests = state.last_requests if state is not None else 0
    return PollingView(
        enabled=state.enabled if state is not None else True,
        interval=interval,
        budget=poll_budget.split(rate_limit_of(connection), interval, effective, last_requests),
        last_polled_at=state.last_polled_at if state is not None else None,
        next_at=state.next_at if state is not None else None,
        last_outcome=state.last_outcome if state is not None else "",
    )


@dataclass(frozen=True)
class Agreement:
    """One linked ledger of a member and when both last held the same details."""

    connection: str
    customer: str
    agreed_at: datetime | None


def agreements(session: Session, member_id: int) -> list[Agreement]:
    """Each ledger the member is linked to, with the moment of the last agreement (from
    real-time writes either way, polls, and full runs that finished)."""
    agreed = live_feed.last_in_agreement(session, member_id)
    rows = session.execute(
        select(
            Connection.id, Connection.name, MemberLinkRow.customer_number, MemberLinkRow.customer_id
        )
        .join(MemberLinkRow, MemberLinkRow.connection_id == Connection.id)
        .where(MemberLinkRow.member_id == member_id, MemberLinkRow.unlinked_at.is_(None))
        .order_by(Connection.name)
    )
    return [
        Agreement(name, number or customer_id, agreed.get(connection_id))
        for connection_id, name, number, customer_id in rows
    ]


def read_polling_view(db: Database, connection: Connection) -> PollingView | None:
    """:func:`polling_view` in its own read session (for an ``async`` page)."""
    with db.read() as session:
        return polling_view(session, connection)
