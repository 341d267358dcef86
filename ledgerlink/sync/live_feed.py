"""The live feed of real-time synchronisation: what was written (or refused) at once, in
either direction, how long it took from change to write, and when each member and ledger
last agreed.

The shared seam of issue 21: registry → ledger writes (``sync/realtime*.py``), ledger →
registry polls and full runs all record here, the Sync page and the API read from here,
and the member's page shows :func:`last_in_agreement`. Callers pass their own session so
the record commits with the write it describes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ledgerlink.store.realtime_models import MemberAgreement, RealtimeWrite

Direction = Literal["to_ledger", "to_registry"]
#: Outcomes that leave both sides holding the same details.
AGREEING_OUTCOMES = frozenset({"written", "unchanged"})


def record_write(
    session: Session,
    *,
    direction: Direction,
    connection_id: int,
    member_id: int,
    changed_at: datetime,
    written_at: datetime,
    outcome: str,
    detail: str = "",
) -> None:
    """One real-time write (or refusal) for the Sync page's feed and lag figures; also
    marks the member and connection as in agreement at ``written_at`` when it succeeded
    (``outcome`` "written" or "unchanged")."""
    lag = max(written_at - changed_at, timedelta(0))
    session.add(
        RealtimeWrite(
            direction=direction,
            connection_id=connection_id,
            member_id=member_id,
            changed_at=changed_at,
            written_at=written_at,
            lag_ms=int(lag.total_seconds() * 1000),
            outcome=outcome,
            detail=detail[:1000],
        )
    )
    if outcome in AGREEING_OUTCOMES:
        mark_in_agreement(
            session, connection_id=connection_id, member_ids=[member_id], at=written_at
        )


def mark_in_agreement(
    session: Session, *, connection_id: int, member_ids: Iterable[int], at: datetime
) -> None:
    """Both sides of ``connection_id`` hold the same details for these members as of
    ``at``. A later moment never goes back to an earlier one (a slow full run finishing
    after a real-time write keeps the write's moment)."""
    ids = sorted(set(member_ids))
    if not ids:
        return
    dialect = session.get_bind().dialect.name
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = upsert(MemberAgreement)
    statement = statement.on_conflict_do_update(
        index_elements=["connection_id", "member_id"],
        set_={
            "agreed_at": func.max(MemberAgreement.agreed_at, statement.excluded.agreed_at)
            if dialect == "sqlite"
            else func.greatest(MemberAgreement.agreed_at, statement.excluded.agreed_at)
        },
    )
    rows = [{"connection_id": connection_id, "member_id": m, "agreed_at": at} for m in ids]
    for start in range(0, len(rows), 500):
        session.execute(statement, rows[start : start + 500])


def last_in_agreement(session: Session, member_id: int) -> dict[int, datetime]:
    """Connection id → when the member and that ledger last held the same details."""
    rows = session.execute(
        select(MemberAgreement.connection_id, MemberAgreement.agreed_at).where(
            MemberAgreement.member_id == member_id
        )
    )
    return {connection_id: agreed_at for connection_id, agreed_at in rows}


@dataclass(frozen=True)
class FeedEntry:
    """One real-time write as the Sync page and the API show it."""

    id: int
    direction: Direction
    connection_id: int
    member_id: int
    changed_at: datetime
    written_at: datetime
    lag_ms: int
    outcome: str
    detail: str


def recent_writes(session: Session, *, limit: int = 20) -> list[FeedEntry]:
    """The newest real-time writes first."""
    rows = session.scalars(
        select(RealtimeWrite).order_by(RealtimeWrite.id.desc()).limit(limit)
    ).all()
    return [
        FeedEntry(
            id=r.id,
            direction="to_registry" if r.direction == "to_registry" else "to_ledger",
            connection_id=r.connection_id,
            member_id=r.member_id,
            changed_at=r.changed_at,
            written_at=r.written_at,
            lag_ms=r.lag_ms,
            outcome=r.outcome,
            detail=r.detail,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class LagFigures:
    """Lag from change to write over a window, for successful writes only."""

    writes: int
    p50_ms: int | None
    p99_ms: int | None


def lag_figures(
    session: Session, *, since: datetime, direction: Direction | None = None
) -> LagFigures:
    """p50/p99 of change → written lag for writes since ``since`` (nearest rank)."""
    query = select(RealtimeWrite.lag_ms).where(
        RealtimeWrite.written_at >= since, RealtimeWrite.outcome.in_(AGREEING_OUTCOMES)
    )
    if direction is not None:
        query = query.where(RealtimeWrite.direction == direction)
    lags = sorted(session.scalars(query))
    if not lags:
        return LagFigures(writes=0, p50_ms=None, p99_ms=None)
    return LagFigures(writes=len(lags), p50_ms=percentile(lags, 50), p99_ms=percentile(lags, 99))


def percentile(sorted_values: list[int], pct: float) -> int:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]
