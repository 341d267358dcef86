"""Bulk create-and-link as a job, resumable without duplicates.

Starting a run snapshots the chosen members as ``bulk_link_items`` (all ``pending``) and
enqueues the ``members.bulk_link`` job in the same transaction. The job works through the
pending items; each item's outcome is stored as soon as it is known, so a run killed
half-way resumes with only the items still pending. An item whose customer was created
but whose outcome was not yet stored is safe too: the retry's create carries the same
idempotency key (the ledger returns the first customer) and the customer, with the
member number as reference, is found and linked rather than created again.

Progress (counts per outcome, and the item list) is read from the items themselves, so
the progress bar and the result list never disagree with what was done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypedDict

import structlog
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_thread
from ledgerlink.connectors.base import Ledger
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.identity.principal import Principal, job_principal
from ledgerlink.jobs.port import JobQueue
from ledgerlink.jobs.registry import JobContext, JobInterrupted, RetryPolicy, tasks
from ledgerlink.members.linking import (
    CustomerIndex,
    CustomerIndexCache,
    LikelyDuplicates,
    LinkError,
    LinkNotFound,
    create_and_link,
    ledger_connection,
)
from ledgerlink.members.search import display_name
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.db import Database
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.member_models import BulkLinkItem, BulkLinkRun, MemberRow
from ledgerlink.store.models import Connection
from ledgerlink.store.types import utcnow

log = structlog.get_logger("ledgerlink.members.bulk")

TASK: Final = "members.bulk_link"
OUTCOMES: Final = ("created", "linked", "skipped", "failed")
MAX_MEMBERS: Final = 100_000
DEFAULT_CONCURRENCY: Final = 4


def start(
    session: Session,
    jobs: JobQueue | None,
    principal: Principal,
    connection_id: int,
    member_ids: list[int],
    selection: Mapping[str, object],
) -> BulkLinkRun:
    """Record a run over ``member_ids`` and enqueue its job (unless ``jobs`` is None, for
    callers that run it in-process, like the CLI), all in the caller's transaction."""
    connection = ledger_connection(session, connection_id)
    unique = list(dict.fromkeys(member_ids))
    if not unique:
        raise LinkError("no members were selected; tick some, or choose all filtered", "members")
    if len(unique) > MAX_MEMBERS:
        raise LinkError(
            f"{len(unique)} members selected; run at most {MAX_MEMBERS} at a time "
            "(narrow the filter)",
            "members",
        )
    run = BulkLinkRun(
        connection_id=connection.id,
        status="queued",
        requested_by=principal.actor,
        selection=dict(selection),
        total=len(unique),
    )
    session.add(run)
    session.flush()
    now = utcnow()
    session.execute(
        insert(BulkLinkItem),
        [
            {
                "run_id": run.id,
                "member_id": member_id,
                "position": position,
                "status": "pending",
                "updated_at": now,
            }
            for position, member_id in enumerate(unique)
        ],
    )
    if jobs is not None:
        run.job_id = jobs.enqueue(
            session,
            TASK,
            {"run_id": run.id, "actor": principal.actor},
            dedup_key=f"{TASK}:{run.id}",
        )
    audit.record(
        session,
        actor=principal.actor,
        action="members.bulk_link.started",
        entity_type="bulk_link_run",
        entity_id=run.id,
        after={"connection_id": connection.id, "total": run.total, "selection": selection},
    )
    return run


def member_ids_for(session: Session, numbers: list[str]) -> list[int]:
    """Ids of the members ``numbers`` (upper-cased); unknown numbers are an error."""
    wanted = [n.strip().upper() for n in numbers if n.strip()]
    found: dict[str, int] = {}
    for offset in range(0, len(wanted), 500):
        chunk = wanted[offset : offset + 500]
        found.update(
            {
                number: member_id
                for number, member_id in session.execute(
                    select(MemberRow.number, MemberRow.id).where(MemberRow.number.in_(chunk))
                )
            }
        )
    missing = [n for n in wanted if n not in found]
    if missing:
        raise LinkError(
            f"unknown member number(s): {', '.join(missing[:10])}"
            + (" …" if len(missing) > 10 else ""),
            "members",
        )
    return [found[n] for n in wanted]


async def run(
    db: Database,
    run_id: int,
    ledger: Ledger,
    principal: Principal,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    should_stop: Callable[[], bool] = lambda: False,
    mappings: MappingRepository,
) -> BulkProgress:
    """Work through the run's pending items; returns the progress at the end.

    Safe to call again after any interruption: only pending items are touched. When
    ``should_stop()`` turns true (the job runner is stopping), members not started yet are
    left pending and :class:`JobInterrupted` is raised so the job runs again.
    """
    connection_id, pending = await in_thread(_begin, db, run_id)
    log.info("members.bulk_link.running", run=run_id, pending=len(pending))
    cache = CustomerIndexCache(ttl=float("inf"))
    try:
        index: CustomerIndex = await cache.get(connection_id, ledger)
    except UpstreamError as exc:
        await in_thread(_finish, db, run_id, error=f"{exc.system_name}: {exc.message}")
        raise
    gate = asyncio.Semaphore(max(1, concurrency))
    stopped: list[BaseException] = []

    interrupted: list[bool] = []

    async def one(item_id: int, number: str) -> None:
        async with gate:
            if stopped or interrupted:  # leave the rest pending for the next run
                return
            if should_stop():
                interrupted.append(True)
                return
            customer_id: str | None = None
            try:
                outcome = await create_and_link(
                    db,
                    principal,
                    ledger,
                    number,
                    connection_id,
                    index=index,
                    cache=cache,
                    mappings=mappings,
                )
                status = "created" if outcome.action == "created" else "linked"
                message, customer_id = outcome.message, outcome.customer.id
            except LikelyDuplicates as exc:
                status, message = "skipped", exc.message
            except LinkError as exc:  # refused or failed upstream: this member only
                status, message = "failed", exc.message
            except BaseException as exc:  # a bug, a lost database, cancellation: stop
                stopped.append(exc)
                raise
            await in_thread(_record, db, item_id, status, message, customer_id)

    await asyncio.gather(*(one(item_id, number) for item_id, number in pending))
    if interrupted:
        log.info("members.bulk_link.interrupted", run=run_id)
        raise JobInterrupted
    return await in_thread(_finish, db, run_id)


def _begin(db: Database, run_id: int) -> tuple[int, list[tuple[int, str]]]:
    """Mark the run running: (its connection id, its pending items as (id, member number))."""
    with db.transaction() as session:
        bulk = session.get(BulkLinkRun, run_id)
        if bulk is None:
            raise LinkNotFound(f"bulk run {run_id} does not exist", "run_id")
        connection_id = bulk.connection_id
        bulk.status = "running"
        bulk.started_at = bulk.started_at or utcnow()
    with db.read() as session:
        pending = session.execute(
            select(BulkLinkItem.id, MemberRow.number)
            .join(MemberRow, MemberRow.id == BulkLinkItem.member_id)
            .where(BulkLinkItem.run_id == run_id, BulkLinkItem.status == "pending")
            .order_by(BulkLinkItem.position)
        ).all()
    return connection_id, [(item_id, number) for item_id, number in pending]


def _record(db: Database, item_id: int, status: str, message: str, customer_id: str | None) -> None:
    with db.transaction() as session:
        session.execute(
            update(BulkLinkItem)
            .where(BulkLinkItem.id == item_id, BulkLinkItem.status == "pending")
            .values(
                status=status,
                message=message[:1000],
                customer_id=customer_id,
                updated_at=utcnow(),
            )
        )


def _finish(db: Database, run_id: int, *, error: str | None = None) -> BulkProgress:
    with db.transaction() as session:
        counts = _counts(session, run_id)
        bulk = session.get(BulkLinkRun, run_id)
        assert bulk is not None
        bulk.created_count = counts["created"]
        bulk.linked_count = counts["linked"]
        bulk.skipped_count = counts["skipped"]
        bulk.failed_count = counts["failed"]
        bulk.last_error = error
        if error is None and counts["pending"] == 0:
            bulk.status = "finished"
            bulk.finished_at = utcnow()
            audit.record(
                session,
                actor=bulk.requested_by,
                action="members.bulk_link.finished",
                entity_type="bulk_link_run",
                entity_id=run_id,
                after={k: counts[k] for k in OUTCOMES},
            )
        elif error is not None:
            bulk.status = "interrupted"
    with db.read() as session:
        return progress(session, run_id, items=0)


def retry_failed(
    session: Session, jobs: JobQueue | None, principal: Principal, run_id: int
) -> BulkLinkRun:
    """Put the run's failed (and skipped) items back to pending and enqueue it again."""
    bulk = session.get(BulkLinkRun, run_id)
    if bulk is None:
        raise LinkNotFound(f"bulk run {run_id} does not exist", "run_id")
    reset = session.execute(
        update(BulkLinkItem)
        .where(BulkLinkItem.run_id == run_id, BulkLinkItem.status == "failed")
        .values(status="pending", message=None, updated_at=utcnow())
    )
    count = int(getattr(reset, "rowcount", 0) or 0)
    if not count:
        raise LinkError("nothing to retry: no item of this run failed", "run_id")
    bulk.status, bulk.finished_at = "queued", None
    if jobs is not None:
        bulk.job_id = jobs.enqueue(
            session,
            TASK,
            {"run_id": run_id, "actor": principal.actor},
            dedup_key=f"{TASK}:{run_id}",
        )
    audit.record(
        session,
        actor=principal.actor,
        action="members.bulk_link.retried",
        entity_type="bulk_link_run",
        entity_id=run_id,
        after={"items": count},
    )
    return bulk


def _counts(session: Session, run_id: int) -> dict[str, int]:
    counts = dict.fromkeys(("pending", *OUTCOMES), 0)
    for status, count in session.execute(
        select(BulkLinkItem.status, func.count())
        .where(BulkLinkItem.run_id == run_id)
        .group_by(BulkLinkItem.status)
    ):
        counts[status] = int(count)
    return counts


@dataclass(frozen=True, slots=True)
class ItemView:
    member_number: str
    member_name: str
    status: str
    customer_id: str | None
    message: str | None


class BulkItemProgress(TypedDict):
    """One member of a run: what happened to it, and why when it failed or was skipped."""

    member_number: str
    member_name: str
    status: str
    customer_id: str | None
    message: str | None


class BulkProgress(TypedDict):
    """A run's progress as the portal, the API and the CLI show it (times as ISO 8601)."""

    id: int
    status: str
    connection_id: int
    connection: str
    requested_by: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    total: int
    done: int
    percent: int
    counts: dict[str, int]
    last_error: str | None
    items: list[BulkItemProgress]


def progress(session: Session, run_id: int, *, items: int = 500) -> BulkProgress:
    """How far the run got: counts per outcome, percent done, and up to ``items`` results
    (finished items first: failures, then skips, then the rest)."""
    bulk = session.get(BulkLinkRun, run_id)
    if bulk is None:
        raise LinkNotFound(f"bulk run {run_id} does not exist", "run_id")
    counts = _counts(session, run_id)
    total = sum(counts.values())
    done = total - counts["pending"]
    connection = session.get(Connection, bulk.connection_id)
    out: BulkProgress = {
        "id": bulk.id,
        "status": bulk.status,
        "connection_id": bulk.connection_id,
        "connection": connection.name if connection else "",
        "requested_by": bulk.requested_by,
        "created_at": bulk.created_at.isoformat(),
        "started_at": bulk.started_at.isoformat() if bulk.started_at else None,
        "finished_at": bulk.finished_at.isoformat() if bulk.finished_at else None,
        "total": total,
        "done": done,
        "percent": int(done * 100 / total) if total else 100,
        "counts": counts,
        "last_error": bulk.last_error,
        "items": [],
    }
    if items:
        order = {"failed": 0, "skipped": 1, "created": 2, "linked": 3, "pending": 4}
        rows = session.execute(
            select(BulkLinkItem, MemberRow)
            .join(MemberRow, MemberRow.id == BulkLinkItem.member_id)
            .where(BulkLinkItem.run_id == run_id)
            .order_by(BulkLinkItem.position)
            .limit(max(items, 1) * 4)
        ).all()
        views = sorted(
            (
                ItemView(
                    member.number, display_name(member), item.status, item.customer_id, item.message
                )
                for item, member in rows
            ),
            key=lambda v: order.get(v.status, 9),
        )[:items]
        out["items"] = [
            {
                "member_number": v.member_number,
                "member_name": v.member_name,
                "status": v.status,
                "customer_id": v.customer_id,
                "message": v.message,
            }
            for v in views
        ]
    return out


async def run_for(
    runtime: Runtime,
    run_id: int,
    principal: Principal,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> BulkProgress | None:
    """Work through a run with what the composition root gives: its connection's ledger
    and the installation's mapping specs. The CLI and the job both run here. ``None``:
    the run is gone, or its connection (then the run is finished with that error)."""
    found = await in_thread(_run_connection, runtime.db, run_id)
    if found is None:
        log.warning("members.bulk_link.gone", run=run_id)
        return None
    connection = found[0]
    if connection is None:
        await in_thread(_finish, runtime.db, run_id, error="the connection was deleted")
        return None
    ledger = runtime.ledger_for(connection)
    try:
        return await run(
            runtime.db,
            run_id,
            ledger,
            principal,
            should_stop=should_stop,
            mappings=runtime.mappings,
        )
    finally:
        await ledger.aclose()


def _run_connection(db: Database, run_id: int) -> tuple[Connection | None] | None:
    """(the run's connection, None when it was deleted), or None when the run is gone."""
    with db.read() as session:
        bulk = session.get(BulkLinkRun, run_id)
        if bulk is None:
            return None
        connection = session.get(Connection, bulk.connection_id)
        if connection is not None:
            session.expunge(connection)
        return (connection,)


def _given_up(db: Database, args: dict[str, Any], error: str) -> None:
    """The run's job failed for good: the run shows it interrupted, with why; "Retry"
    (or starting it again) goes on with the members still pending."""
    _finish(db, int(args["run_id"]), error=f"the job running this link was given up: {error}")


@tasks.task(
    TASK,
    retry=RetryPolicy(max_attempts=5, base_delay=10.0, max_delay=300.0),
    resumable=True,  # each member's outcome is committed as it is known
    on_given_up=_given_up,
)
def bulk_link_task(ctx: JobContext, *, run_id: int, actor: str) -> None:
    """The job: open the run's ledger and work through its pending items."""
    asyncio.run(
        run_for(Runtime.for_job(ctx), run_id, job_principal(actor), should_stop=ctx.stopping.is_set)
    )
