"""Registry → ledger in real time: the job that writes dirty members to one connection.

``sync/realtime_outbox.py`` marks members dirty in the transaction that changed them and
enqueues this job (one per connection: its ``dedup_key`` coalesces a burst). The job
takes the members that are ready, writes them through **the full run's own page**
(:class:`RealtimeExecution` is an :class:`~ledgerlink.sync.execution.Execution` given the
members instead of a cursor's selection: the same read, merge, specs, ledger writes,
baselines and records, committed in the same one transaction), and in that transaction
removes each settled member from the outbox and adds it to the live feed. It goes round
again while members wait, so a change landing during a write is written next.

What a write ends as:

* written (or unchanged: both sides already agreed) → the member leaves the outbox;
* refused by the ledger (a validation error): recorded in the day's real-time run with
  the ledger's message and the fix, like a full run's failed record, and not retried (the
  value must change first); other members are written as usual;
* failed in a way a retry can fix (5xx, 429, timeout): the member stays in the outbox
  and the job fails this attempt *after* committing everyone else, so the job queue's
  backoff tries again.

On a ledger that limits requests (SBC: 100 a minute), real-time writes keep to the share
of full syncs in the connection's budget (``sync/poll_budget.py``), pausing between
batches, so a burst (an import touching thousands of linked members) never holds up the
receipts of card payments; the backlog shows on the Sync page as what is waiting.

Every connection keeps one sync run a day for its real-time writes (trigger
``realtime``), so the Sync log lists them once a day, not once a write, and "Retry
failed records" works on them as on any run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Final

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_thread
from ledgerlink.connectors.base import Ledger
from ledgerlink.domain.accounts import CustomerAccount
from ledgerlink.identity.principal import Principal, system_principal
from ledgerlink.jobs.registry import JobContext, JobInterrupted, RetryPolicy, tasks
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.db import Database
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import SyncBaseline, SyncRun
from ledgerlink.store.types import utcnow
from ledgerlink.sync import live_feed, poll_budget
from ledgerlink.sync import member_details as details
from ledgerlink.sync import realtime_inbound as inbound
from ledgerlink.sync import realtime_outbox as outbox
from ledgerlink.sync.datasets import DataSet
from ledgerlink.sync.execution import Execution, _Page
from ledgerlink.sync.plan import Checkpoint
from ledgerlink.sync.starting import ledger_connection, policies_of, settings_for
from ledgerlink.sync.tally import Tally

log = structlog.get_logger("ledgerlink.sync.realtime")

TRIGGER: Final = "realtime"
#: Who the audit chain and the run name for real-time writes.
ACTOR: Final = "real-time sync"
#: At most this many members a batch: each batch commits (and shows in the feed) as soon
#: as its writes return, so under a ledger's rate limit the oldest changes land first.
BATCH: Final = 10
MEMBER_DETAILS: Final = DataSet.MEMBER_DETAILS.value
#: From this many members a batch, its customers come from one incremental read...
INCREMENTAL_FROM: Final = 3
#: ...which stops after this many customers a member (single reads would cost less).
READ_PER_MEMBER: Final = 50
#: Customers a listing request returns (SBC's page), to count the listing's requests.
LISTING_PAGE: Final = 200


class WritesPending(Exception):
    """Some members could not be written for a reason a retry can fix; everyone else was.
    Raised after committing, so the job queue tries again with its backoff."""


def _fix(write: details.LedgerWrite | None, fix: str) -> str:
    """What to do about a refusal: for a field the ledger refused, correct the member (the
    correction is written at once); otherwise what the full run's record says."""
    if write is not None and write.field:
        return (
            f"correct the member so that the ledger accepts {write.field}, and save: the "
            "change is written again at once"
        )
    return fix or "correct the member and save it again"


class RealtimeExecution(Execution):
    """A full run's member-details page, for the members the outbox gave.

    Only the selection and the run's bookkeeping differ from a full run: the members are
    given (no cursor is read or moved), and the run is the connection's real-time run of
    the day, which stays finished while batches add to its records and counts.
    """

    def __init__(
        self,
        db: Database,
        run_id: int,
        ledger: Ledger,
        principal: Principal,
        taken: list[outbox.Taken],
        *,
        mappings: MappingRepository,
    ) -> None:
        super().__init__(
            db, run_id, ledger, principal, page_size=max(1, len(taken)), mappings=mappings
        )
        self.taken = {t.member_id: t for t in taken}
        #: members settled in the page's transaction (the others were not linked any more)
        self.settled: set[int] = set()
        #: members left in the outbox to be tried again
        self.retrying: dict[int, str] = {}
        #: ledger writes made, and requests sent in all (about), for the pace
        self.writes = 0
        self.requests = 0

    def _prepare(self) -> None:
        """What ``Execution._begin`` loads, without starting or ending the run."""
        with self.db.transaction() as session:  # settings_for stores defaults on first use
            run = session.get(SyncRun, self.run_id)
            assert run is not None
            settings = settings_for(session, run.connection_id)
            self.connection_id = ledger_connection(session, run.connection_id).id
            self.policies = policies_of(settings)
            self.overlap = timedelta(seconds=settings.overlap_seconds)
            self.data_sets = [MEMBER_DETAILS]
            self.dry_run = False
            self.remap = False
            self.source_run_id = None
            self.trigger = TRIGGER
            self.periods = []
            self.checkpoint = Checkpoint.from_json(run.checkpoint)
            self.counts = dict(run.counts or {})
            self.tally = Tally.from_json(self.checkpoint.progress)

    async def write(self) -> None:
        await in_thread(self._prepare)
        self.mapping = await in_thread(self._load_mapping)
        members = sorted(self.taken)
        self.tally.expect(MEMBER_DETAILS, self.tally.done_of(MEMBER_DETAILS) + len(members))
        known = await self._recently_changed(members)
        await self._page(members, known)
        # what the batch cost upstream, about: the listing, single reads, writes
        self.requests += len(members) - len(known) + self.writes
        await in_thread(self._forget_unlinked)

    async def _recently_changed(self, members: list[int]) -> dict[str, CustomerAccount | None]:
        """The batch's customers from one incremental read, as a full run reads them: the
        customers changed since the batch's oldest agreement (minus the overlap window).
        Those it does not return are read one by one by the page, so the read only saves
        requests (a write costs one instead of two under a ledger's rate limit) and our
        clock here decides nothing; it stops after ``READ_PER_MEMBER`` customers a member,
        where single reads would be cheaper."""
        if len(members) < INCREMENTAL_FROM:
            return {}
        since, by_customer = await in_thread(self._oldest_agreement, members)
        if since is None:
            return {}
        known: dict[str, CustomerAccount | None] = {}
        seen = 0
        # (a read left early is closed by the event loop; it waits between pages, not in one)
        async for customer in self.ledger.customers(changed_since=since - self.overlap):
            if customer.id in by_customer:
                known[customer.id] = None if customer.deleted else customer
            seen += 1
            if seen >= READ_PER_MEMBER * len(members):
                break
        self.requests += 1 + seen // LISTING_PAGE
        return known

    def _oldest_agreement(self, members: list[int]) -> tuple[datetime | None, set[str]]:
        """When the batch's members last agreed with the ledger, the oldest (None when one
        never did), and their customers."""
        with self.db.read() as session:
            links = details.linked_members(session, self.connection_id, members)
            agreed = session.execute(
                select(SyncBaseline.member_id, SyncBaseline.synced_at).where(
                    SyncBaseline.connection_id == self.connection_id,
                    SyncBaseline.member_id.in_(members),
                )
            ).all()
        if len(agreed) < len(links):
            return None, set()
        return min((at for _, at in agreed), default=None), {m.customer_id for m in links.values()}

    def _settle(
        self,
        session: Session,
        plan: details.MemberPlan,
        written: details.Written,
        page: _Page,
    ) -> None:
        member_id = plan.linked.member_id
        item = self.taken[member_id]
        self.settled.add(member_id)
        write = written.get(member_id)
        self.writes += write is not None
        now = utcnow()
        if write is not None and not write.ok and write.retryable:
            # no record and no baseline: the member waits in the outbox for the retry
            outbox.put_back(session, self.connection_id, item)
            self.retrying[member_id] = write.message
            live_feed.record_write(
                session,
                direction="to_ledger",
                connection_id=self.connection_id,
                member_id=member_id,
                changed_at=item.changed_at,
                written_at=now,
                outcome="retrying",
                detail=f"{write.message}; it will be tried again shortly",
            )
            return
        before = len(page.records)
        super()._settle(session, plan, written, page)
        record = page.records[-1] if len(page.records) > before else None
        outbox.written(session, self.connection_id, item)
        if record is None:
            outcome, direction, detail = "unchanged", "to_ledger", "both sides already agree"
        elif record.status == "failed":
            outcome, direction = "refused", "to_ledger"
            detail = f"{record.message}. Fix: {_fix(write, record.fix)}"
        elif record.action == "delete":
            outcome, direction, detail = "unlinked", "to_registry", record.message
        else:
            outcome = "written"
            direction = "to_registry" if record.direction == "to_registry" else "to_ledger"
            detail = record.message
        live_feed.record_write(
            session,
            direction="to_registry" if direction == "to_registry" else "to_ledger",
            connection_id=self.connection_id,
            member_id=member_id,
            changed_at=item.changed_at,
            written_at=now,
            outcome=outcome,
            detail=detail,
        )

    def _forget_unlinked(self) -> None:
        """Members no longer linked (unlinked or removed since they changed): nothing to
        write. And the run's last write time."""
        with self.db.transaction() as session:
            for member_id, item in self.taken.items():
                if member_id not in self.settled:
                    outbox.written(session, self.connection_id, item)
            run = session.get(SyncRun, self.run_id)
            if run is not None:
                run.finished_at = utcnow()


def todays_run(session: Session, connection_id: int, now: datetime) -> int:
    """The connection's real-time run of the day (UTC), made on the day's first write."""
    midnight = datetime.combine(now.astimezone(UTC).date(), clock_time(), UTC)
    found = session.scalar(
        select(SyncRun.id)
        .where(
            SyncRun.connection_id == connection_id,
            SyncRun.trigger == TRIGGER,
            SyncRun.created_at >= midnight,
        )
        .order_by(SyncRun.id)
        .limit(1)
    )
    if found is not None:
        return int(found)
    run = SyncRun(
        connection_id=connection_id,
        trigger=TRIGGER,
        data_sets=[MEMBER_DETAILS],
        dry_run=False,
        remap=False,
        status="finished",
        counts={},
        checkpoint=Checkpoint(progress={MEMBER_DETAILS: [0, 0]}).as_json(),
        total=0,
        done=0,
        requested_by=ACTOR,
        created_at=now,
        started_at=now,
        finished_at=now,
    )
    session.add(run)
    session.flush()
    audit.record(
        session,
        actor=system_principal(ACTOR).actor,
        action="sync.started",
        entity_type="sync_run",
        entity_id=run.id,
        after={"connection_id": connection_id, "data_sets": [MEMBER_DETAILS], "trigger": TRIGGER},
    )
    return run.id


@dataclass
class PushSummary:
    """What one job did, for its log line and the tests."""

    batches: int = 0
    members: int = 0
    retrying: int = 0


def _writing_connection(db: Database, connection_id: int) -> Connection | None:
    """The connection when it still writes in real time; otherwise its waiting members are
    dropped (turned off, member details no longer synced, or the connection is gone)."""
    with db.transaction() as session:
        connection = session.get(Connection, connection_id)
        if connection is None or not outbox.writing_connections(session, {connection_id}):
            outbox.drop(session, connection_id)
            return None
        session.expunge(connection)
        return connection


def writing_share(connection: Connection) -> float | None:
    """Requests a minute real-time writes may send: the share of full syncs in the
    connection's budget (``sync/poll_budget.py``: payments and polling keep theirs), or
    None for a ledger without a request limit (Sage 500 over SQL)."""
    per_minute = inbound.rate_limit_of(connection)
    if per_minute is None:
        return None
    return max(1.0, per_minute * poll_budget.FULL_SYNC_SHARE)


async def _pause(seconds: float, should_stop: Callable[[], bool]) -> None:
    """Wait, a second at a time, so that a stopping worker is not held up."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0 and not should_stop():
        await asyncio.sleep(min(left, 1.0))


def _take(
    db: Database, connection_id: int
) -> tuple[list[outbox.Taken], datetime | None, int | None]:
    now = utcnow()
    with db.transaction() as session:
        taken, next_at = outbox.take(session, connection_id, now, limit=BATCH)
        run_id = todays_run(session, connection_id, now) if taken else None
        return taken, next_at, run_id


def _look_again_soon(runtime: Runtime, connection_id: int) -> None:
    """Schedule :func:`last_look_task` for the connection (see it for why)."""
    with runtime.db.transaction() as session:
        runtime.jobs.enqueue(
            session,
            LAST_LOOK_TASK,
            {"connection_id": connection_id},
            delay=outbox.QUIET,
            dedup_key=f"{LAST_LOOK_TASK}:{connection_id}",
        )


def _release(db: Database, connection_id: int) -> None:
    with db.transaction() as session:
        outbox.release_all(session, connection_id)


async def push(
    runtime: Runtime,
    connection_id: int,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> PushSummary:
    """Write the connection's dirty members until none is left (the job's body)."""
    summary = PushSummary()
    connection = await in_thread(_writing_connection, runtime.db, connection_id)
    if connection is None:
        return summary
    principal = system_principal(ACTOR)
    share = writing_share(connection)
    ledger = runtime.ledger_for(connection)
    try:
        while True:
            if should_stop():
                raise JobInterrupted
            taken, next_at, run_id = await in_thread(_take, runtime.db, connection_id)
            if not taken:
                if next_at is None:
                    await in_thread(_look_again_soon, runtime, connection_id)
                    break
                wait = (next_at - utcnow()).total_seconds()
                await asyncio.sleep(min(max(wait, 0.01), outbox.MOST_WAIT.total_seconds()))
                continue
            assert run_id is not None
            execution = RealtimeExecution(
                runtime.db, run_id, ledger, principal, taken, mappings=runtime.mappings
            )
            began = time.monotonic()
            try:
                await execution.write()
            except BaseException:
                await in_thread(_release, runtime.db, connection_id)
                raise
            if share is not None:  # keep to the share: payments keep theirs
                pause = execution.requests * 60 / share - (time.monotonic() - began)
                await _pause(pause, should_stop)
            summary.batches += 1
            summary.members += len(taken)
            if execution.retrying:
                summary.retrying = len(execution.retrying)
                reason = next(iter(execution.retrying.values()))
                raise WritesPending(
                    f"{len(execution.retrying)} member(s) could not be written to "
                    f"{connection.name} yet ({reason}); trying again"
                )
    finally:
        await ledger.aclose()
    log.info(
        "realtime.pushed",
        connection=connection_id,
        batches=summary.batches,
        members=summary.members,
    )
    return summary


@tasks.task(
    outbox.TASK,
    retry=RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=60.0),
    resumable=True,  # a member leaves the outbox only once written
)
def realtime_task(ctx: JobContext, *, connection_id: int) -> None:
    """The job: write one connection's dirty members (see the module's docstring)."""
    asyncio.run(push(Runtime.for_job(ctx), connection_id, should_stop=ctx.stopping.is_set))


LAST_LOOK_TASK: Final = "sync.realtime_last_look"


@tasks.task(LAST_LOOK_TASK, retry=RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=10.0))
def last_look_task(ctx: JobContext, *, connection_id: int) -> None:
    """A second after a connection's job found nothing left: enqueue it again if members
    wait. The queue refuses a second job for a connection while the first still runs, so
    an edit committed between the job's last look and its end (closing its connection,
    being marked done) would otherwise wait for the minute's sweep."""
    runtime = Runtime.for_job(ctx)
    with runtime.db.transaction() as session:
        if outbox.waits(session, connection_id):
            runtime.jobs.enqueue(
                session,
                outbox.TASK,
                {"connection_id": connection_id},
                dedup_key=outbox.dedup_key(connection_id),
            )


SWEEP_TASK: Final = "sync.realtime_sweep"


@tasks.task(SWEEP_TASK, retry=RetryPolicy(max_attempts=1))
def sweep_task(ctx: JobContext) -> None:
    """Every minute: a job for each connection with members still waiting (a change that
    landed as its job was ending, a job that ran out of attempts)."""
    runtime = Runtime.for_job(ctx)
    with runtime.db.transaction() as session:
        for connection_id in outbox.dirty_connections(session):
            runtime.jobs.enqueue(
                session,
                outbox.TASK,
                {"connection_id": connection_id},
                dedup_key=outbox.dedup_key(connection_id),
            )


tasks.periodic(SWEEP_TASK, "* * * * *", SWEEP_TASK)
