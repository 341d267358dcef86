"""Registry changes waiting to be written to a ledger at once (issue 21, registry → ledgers).

Every member created, changed or removed in the registry (portal, API, CSV import, a sync
writing the ledger's side) calls :func:`member_changed` in the same transaction. For each
ledger connection the member is linked to, whose sync settings include member details and
whose real-time writing is on, it marks the member *dirty since* now in
``realtime_outbox`` and enqueues the connection's real-time job (``sync/realtime.py``),
so the job exists exactly when the change committed.

Why an outbox and not only a job per change: the job queue's ``dedup_key`` refuses a
second job while the first is *queued* (which is what coalesces a burst into one write)
but also while it is *running*, so a change landing during a write would have no job.
The row's ``seq`` moves with every change; the job takes the rows it writes
(``taken_seq = seq``), and afterwards removes only those whose ``seq`` did not move. A
row that moved stays, with ``changed_at`` restarted at the first change after the take,
and the job (still running) goes round again. A row marked between the job's last look and
its own completion has no job of its own: the job schedules a last look a second after it
ends (``sync.realtime_last_look``), and the one-minute sweep catches anything else.

New members are linked to no customer yet (a full run creates no customers either:
*Create Account* and *Link* do), so a creation enqueues nothing until a link exists.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol

import structlog
from sqlalchemy import Engine, and_, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.store import audit
from ledgerlink.store.member_models import MemberLinkRow
from ledgerlink.store.models import Connection
from ledgerlink.store.realtime_models import RealtimeOutbox, RealtimeSettings
from ledgerlink.store.sync_models import SyncSettings
from ledgerlink.store.types import utcnow
from ledgerlink.sync.datasets import DataSet

if TYPE_CHECKING:
    from ledgerlink.jobs.port import JobQueue
    from ledgerlink.store.db import Database

log = structlog.get_logger("ledgerlink.sync.realtime")

#: The real-time job of one connection (``sync/realtime.py`` registers it).
TASK: Final = "sync.realtime_push"
#: A burst of edits to one member (someone correcting a form several times, an import
#: touching it twice) is written once the member has been quiet this long...
QUIET: Final = timedelta(seconds=1)
#: ...or once its first unwritten change is this old, however busy it still is.
MOST_WAIT: Final = timedelta(seconds=5)
#: Members becoming ready within this much of each other are taken in one batch.
TOGETHER: Final = timedelta(milliseconds=200)


def dedup_key(connection_id: int) -> str:
    return f"{TASK}:{connection_id}"


# -- how changes reach the job queue ---------------------------------------------------------


class HasJobs(Protocol):
    """What gives a database's sessions their job queue (the ``Runtime``)."""

    @property
    def jobs(self) -> JobQueue: ...


#: The composition root whose job queue each database's sessions enqueue through, set by
#: ``Runtime`` when it builds (or is handed) the database. Held weakly both ways, and the
#: queue is built only when a member first changes.
_QUEUES: weakref.WeakKeyDictionary[Engine, weakref.ref[HasJobs]] = weakref.WeakKeyDictionary()


def dispatch_through(db: Database, root: HasJobs) -> None:
    """Registry changes made in ``db``'s sessions enqueue their real-time job on
    ``root.jobs``. Without it (a bare database in a test) the changes wait in the outbox
    for the one-minute sweep.

    A root already registered and still alive is kept: under ``ledgerlink serve`` on
    SQLite the embedded runner runs every job on the web process's own database, each job
    with a runtime of its own (``Runtime.for_job``) that is gone when the job ends, and
    taking its place left the web's edits with no queue until the next sweep."""
    current = _QUEUES.get(db.engine)
    if current is not None and current() is not None:
        return
    _QUEUES[db.engine] = weakref.ref(root)


def _queue_for(session: Session) -> JobQueue | None:
    found = _QUEUES.get(session.get_bind().engine)
    root = found() if found is not None else None
    return root.jobs if root is not None else None


# -- the hook ---------------------------------------------------------------------------------


def member_changed(
    session: Session, member_ids: Iterable[int], *, read_from: int | None = None
) -> int:
    """Members were created, changed or removed in this transaction: mark them dirty for
    every linked connection writing in real time and enqueue those connections' jobs.
    ``read_from``: the connection the change was read from (a sync or a poll writing the
    registry), left out: it holds the change already, and writing it back would spend
    its rate budget on an echo and show a real-time run after every Sync Now.
    Returns how many (connection, member) pairs were marked."""
    ids = sorted(set(member_ids))
    if not ids:
        return 0
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(ids), 500):
        pairs.extend(
            session.execute(
                select(MemberLinkRow.connection_id, MemberLinkRow.member_id).where(
                    MemberLinkRow.member_id.in_(ids[start : start + 500]),
                    MemberLinkRow.unlinked_at.is_(None),
                )
            ).tuples()
        )
    if not pairs:
        return 0
    live = writing_connections(session, {c for c, _ in pairs}) - {read_from}
    pairs = [(c, m) for c, m in pairs if c in live]
    if not pairs:
        return 0
    now = utcnow()
    _mark_dirty(session, pairs, now)
    queue = _queue_for(session)
    if queue is None:
        log.debug("realtime.no_queue", connections=sorted(live))
        return len(pairs)
    for connection_id in sorted({c for c, _ in pairs}):
        queue.enqueue(
            session,
            TASK,
            {"connection_id": connection_id},
            delay=QUIET,
            dedup_key=dedup_key(connection_id),
        )
    return len(pairs)


def writing_connections(session: Session, connection_ids: set[int]) -> set[int]:
    """Those of ``connection_ids`` that write registry changes at once: real-time on (the
    default) and member details among the data sets their sync settings choose (no
    settings yet: every data set, as a full run would)."""
    if not connection_ids:
        return set()
    off = set(
        session.scalars(
            select(RealtimeSettings.connection_id).where(
                RealtimeSettings.connection_id.in_(connection_ids),
                RealtimeSettings.outbound_enabled.is_(False),
            )
        )
    )
    chosen = {
        connection_id: data_sets
        for connection_id, data_sets in session.execute(
            select(SyncSettings.connection_id, SyncSettings.data_sets).where(
                SyncSettings.connection_id.in_(connection_ids)
            )
        )
    }
    return {
        c
        for c in connection_ids
        if c not in off and (c not in chosen or DataSet.MEMBER_DETAILS.value in (chosen[c] or []))
    }


def _mark_dirty(session: Session, pairs: list[tuple[int, int]], now: datetime) -> None:
    dialect = session.get_bind().dialect.name
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = RealtimeOutbox.__table__
    statement = upsert(RealtimeOutbox)
    statement = statement.on_conflict_do_update(
        index_elements=["connection_id", "member_id"],
        set_={
            "seq": table.c.seq + 1,
            # the first change after a job took the row starts the next write's lag
            "changed_at": case(
                (table.c.seq == table.c.taken_seq, statement.excluded.changed_at),
                else_=table.c.changed_at,
            ),
            "last_changed_at": statement.excluded.last_changed_at,
        },
    )
    session.execute(
        statement,
        [
            {
                "connection_id": c,
                "member_id": m,
                "changed_at": now,
                "last_changed_at": now,
                "seq": 1,
                "taken_seq": None,
                "action": "update",
            }
            for c, m in sorted(set(pairs))
        ],
    )


# -- what the job takes and gives back --------------------------------------------------------


@dataclass(frozen=True)
class Taken:
    """One dirty member as the job took it."""

    member_id: int
    seq: int
    changed_at: datetime


def take(
    session: Session, connection_id: int, now: datetime, *, limit: int = 500
) -> tuple[list[Taken], datetime | None]:
    """The connection's dirty members ready to write (quiet for :data:`QUIET`, or waiting
    :data:`MOST_WAIT`), oldest change first, marked taken; and when the next of the others
    is ready (None: nothing else waits)."""
    # ``TOGETHER``: members changed together (one import, one transaction) are marked
    # milliseconds apart; they become ready, and are written, together
    ready = (RealtimeOutbox.last_changed_at <= now - QUIET + TOGETHER) | (
        RealtimeOutbox.changed_at <= now - MOST_WAIT + TOGETHER
    )
    rows = session.execute(
        select(RealtimeOutbox.member_id, RealtimeOutbox.seq, RealtimeOutbox.changed_at)
        .where(RealtimeOutbox.connection_id == connection_id, ready)
        .order_by(RealtimeOutbox.changed_at, RealtimeOutbox.member_id)
        .limit(limit)
    ).all()
    taken = [Taken(m, s, c) for m, s, c in rows]
    for item in taken:
        session.execute(
            update(RealtimeOutbox)
            .where(
                RealtimeOutbox.connection_id == connection_id,
                RealtimeOutbox.member_id == item.member_id,
            )
            .values(taken_seq=item.seq)
        )
    upcoming = session.execute(
        select(func.min(RealtimeOutbox.last_changed_at), func.min(RealtimeOutbox.changed_at)).where(
            RealtimeOutbox.connection_id == connection_id,
            RealtimeOutbox.member_id.not_in([t.member_id for t in taken] or [-1]),
        )
    ).one()
    next_at: datetime | None = None
    if upcoming[0] is not None:
        next_at = min(upcoming[0] + QUIET, upcoming[1] + MOST_WAIT)
    return taken, next_at


def written(session: Session, connection_id: int, item: Taken) -> bool:
    """The member's write is over (written, unchanged or refused): forget the row unless it
    changed since it was taken. True when it is gone."""
    result = session.execute(
        delete(RealtimeOutbox).where(
            RealtimeOutbox.connection_id == connection_id,
            RealtimeOutbox.member_id == item.member_id,
            RealtimeOutbox.seq == item.seq,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def put_back(session: Session, connection_id: int, item: Taken) -> None:
    """The write failed in a way a retry can fix: the row waits again, its lag still
    counted from its first change."""
    session.execute(
        update(RealtimeOutbox)
        .where(
            RealtimeOutbox.connection_id == connection_id,
            RealtimeOutbox.member_id == item.member_id,
        )
        .values(taken_seq=None)
    )


def release_all(session: Session, connection_id: int) -> None:
    """A job stopped mid-batch (upstream down, worker stopping): nothing is taken."""
    session.execute(
        update(RealtimeOutbox)
        .where(RealtimeOutbox.connection_id == connection_id)
        .values(taken_seq=None)
    )


def drop(session: Session, connection_id: int) -> None:
    """Forget what waits for a connection that no longer writes in real time."""
    session.execute(delete(RealtimeOutbox).where(RealtimeOutbox.connection_id == connection_id))


def waits(session: Session, connection_id: int) -> bool:
    """Whether any member waits to be written to the connection."""
    waiting_here = RealtimeOutbox.connection_id == connection_id
    found = session.scalar(select(RealtimeOutbox.member_id).where(waiting_here).limit(1))
    return found is not None


def dirty_connections(session: Session) -> list[int]:
    return sorted(set(session.scalars(select(RealtimeOutbox.connection_id).distinct())))


@dataclass(frozen=True)
class Waiting:
    """What waits to be written, per connection: members and since when."""

    connection_id: int
    members: int
    oldest: datetime


def waiting(session: Session) -> list[Waiting]:
    rows = session.execute(
        select(
            RealtimeOutbox.connection_id, func.count(), func.min(RealtimeOutbox.changed_at)
        ).group_by(RealtimeOutbox.connection_id)
    ).all()
    return [Waiting(c, int(n), oldest) for c, n, oldest in rows]


# -- the per-connection switch ----------------------------------------------------------------


def outbound_enabled(session: Session, connection_id: int) -> bool:
    row = session.get(RealtimeSettings, connection_id)
    return True if row is None else bool(row.outbound_enabled)


def set_outbound(session: Session, principal: Principal, connection_id: int, enabled: bool) -> None:
    """Turn real-time writing of registry changes on or off for a connection (audited).
    Turning it off forgets what waits: the next full run writes those members."""
    before = outbound_enabled(session, connection_id)
    if before == enabled:
        return
    row = session.get(RealtimeSettings, connection_id)
    if row is None:
        row = RealtimeSettings(connection_id=connection_id, outbound_enabled=enabled)
        session.add(row)
    row.outbound_enabled = enabled
    if not enabled:
        session.execute(delete(RealtimeOutbox).where(RealtimeOutbox.connection_id == connection_id))
    connection = session.get(Connection, connection_id)
    audit.record(
        session,
        actor=principal.actor,
        action="sync.realtime_changed",
        entity_type="connection",
        entity_id=connection_id,
        before={"realtime_outbound": before},
        after={
            "realtime_outbound": enabled,
            "connection": connection.name if connection else str(connection_id),
        },
    )


def outbound_settings(session: Session, connection_ids: Iterable[int]) -> dict[int, bool]:
    ids = list(connection_ids)
    off = set(
        session.scalars(
            select(RealtimeSettings.connection_id).where(
                and_(
                    RealtimeSettings.connection_id.in_(ids),
                    RealtimeSettings.outbound_enabled.is_(False),
                )
            )
        )
    )
    return {c: c not in off for c in ids}
