"""The live feed as the Sync page and the API show it: recent real-time writes in both
directions, how long a change took to reach the other side over the last hour, and what
is waiting, in words a finance operator reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.members.search import display_name
from ledgerlink.store.member_models import MemberRow
from ledgerlink.store.models import Connection
from ledgerlink.sync import live_feed, realtime_outbox

#: The window of the lag figures.
WINDOW: Final = timedelta(hours=1)
OUTCOMES: Final = {
    "written": ("Written", "ok"),
    "unchanged": ("Already in agreement", "ok"),
    "refused": ("Refused by the ledger", "bad"),
    "retrying": ("Could not reach the ledger; trying again", "warn"),
    "unlinked": ("Customer deleted in the ledger; member unlinked", "warn"),
    "failed": ("Failed", "bad"),
}


@dataclass(frozen=True)
class FeedRow:
    member_id: int
    member_number: str  # "" when the member was removed since
    member_name: str
    connection_id: int
    connection: str
    direction: str  # to_ledger | to_registry
    direction_words: str
    outcome: str
    outcome_words: str
    tone: str
    detail: str
    changed_at: datetime
    written_at: datetime
    lag_ms: int
    lag_words: str


@dataclass(frozen=True)
class WaitingRow:
    connection_id: int
    connection: str
    members: int
    oldest: datetime
    waited_words: str


@dataclass(frozen=True)
class LiveFeed:
    rows: list[FeedRow]
    writes_last_hour: int
    p50_ms: int | None
    p99_ms: int | None
    lag_words: str
    waiting: list[WaitingRow]
    waiting_words: str
    #: connection id → real-time writing of registry changes on
    realtime_on: dict[int, bool]


def duration_words(ms: int) -> str:
    """0.4 s, 12 s, 3 min 5 s, 2 h 10 min."""
    seconds = ms / 1000
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def display_names(session: Session, member_ids: set[int]) -> dict[int, tuple[str, str]]:
    """member id → (number, name as the registry shows it)."""
    if not member_ids:
        return {}
    return {
        row.id: (row.number, display_name(row))
        for row in session.scalars(select(MemberRow).where(MemberRow.id.in_(sorted(member_ids))))
    }


def live(session: Session, *, now: datetime | None = None, limit: int = 20) -> LiveFeed:
    now = now or datetime.now(UTC)
    names = dict(session.execute(select(Connection.id, Connection.name)).tuples().all())
    entries = live_feed.recent_writes(session, limit=limit)
    members = display_names(session, {e.member_id for e in entries})
    rows = []
    for e in entries:
        connection = names.get(e.connection_id, f"connection {e.connection_id}")
        words, tone = OUTCOMES.get(e.outcome, (e.outcome, ""))
        number, name = members.get(e.member_id, ("", "a member removed since"))
        rows.append(
            FeedRow(
                member_id=e.member_id,
                member_number=number,
                member_name=name,
                connection_id=e.connection_id,
                connection=connection,
                direction=e.direction,
                direction_words=f"Member registry → {connection}"
                if e.direction == "to_ledger"
                else f"{connection} → member registry",
                outcome=e.outcome,
                outcome_words=words,
                tone=tone,
                detail=e.detail,
                changed_at=e.changed_at,
                written_at=e.written_at,
                lag_ms=e.lag_ms,
                lag_words=duration_words(e.lag_ms),
            )
        )
    figures = live_feed.lag_figures(session, since=now - WINDOW)
    if figures.writes and figures.p50_ms is not None and figures.p99_ms is not None:
        lag_words = (
            f"{figures.writes} change(s) written in the last hour. Half reached the other side "
            f"within {duration_words(figures.p50_ms)}, 99 in 100 within "
            f"{duration_words(figures.p99_ms)}."
        )
    else:
        lag_words = "No real-time writes in the last hour."
    waiting = [
        WaitingRow(
            connection_id=w.connection_id,
            connection=names.get(w.connection_id, f"connection {w.connection_id}"),
            members=w.members,
            oldest=w.oldest,
            waited_words=duration_words(int(max((now - w.oldest).total_seconds(), 0) * 1000)),
        )
        for w in realtime_outbox.waiting(session)
    ]
    if waiting:
        waiting_words = "; ".join(
            f"{w.members} member change(s) waiting for {w.connection}, the oldest for "
            f"{w.waited_words}"
            for w in waiting
        )
    else:
        waiting_words = "Nothing is waiting: every member change has been written."
    return LiveFeed(
        rows=rows,
        writes_last_hour=figures.writes,
        p50_ms=figures.p50_ms,
        p99_ms=figures.p99_ms,
        lag_words=lag_words,
        waiting=waiting,
        waiting_words=waiting_words,
        realtime_on=realtime_outbox.outbound_settings(session, names),
    )
