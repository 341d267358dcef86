"""Ledgers → registry in near real time: poll a ledger for customers changed since the last
poll and merge them into the registry as a full run would.

SBC sends no events, so its contacts are read with ``updated_or_created_since`` (and
``deleted_since``); Sage 500's customers by ``UpdateDate``. Both go through the port's
``customers(changed_since=…)``, so this module never knows which ledger it reads.

* **The same rules as a full run.** Each changed customer's member is evaluated with
  :func:`ledgerlink.sync.member_details.evaluate` against the stored baseline and the
  connection's mapping specs and field policies; registry fields are written through the
  registry (validated and audited), ledger fields (when the registry changed too and the
  policy says so) through the port, and the new baseline is stored in the same
  transaction as the registry write, so the next full run (or an outbound real-time write
  of the same member) finds both sides agreeing and writes nothing again.
* **The cursor is the ledger's clock** (:class:`ledgerlink.sync.cursors.HighWater`): the
  newest ``updated_at`` the ledger reported, minus the sync settings' overlap, never our
  clock, so a vendor whose clock runs behind ours cannot have a change skipped. What the
  overlap reads again is dropped by the baseline's content hash (``raw_hash``). The cursor
  moves in the transaction that stores what it covers.
* **Never beside a full run.** A poll does nothing while a full member-details run of the
  connection is queued or running (that run reads the same changes), and checks again
  just before it writes either side.
* **A refusal blocks nobody.** A value the registry refuses (a phone number that is not
  one) is logged with the field and the fix: in the structured log, the live feed, and as
  a failed record of a ``realtime`` sync run, so "retry failed records" can take it up
  once it is corrected in the ledger. The other members of the poll are written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Final

import httpx
import structlog
from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_thread
from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.connectors import registry as connectors
from ledgerlink.connectors.base import Ledger
from ledgerlink.connectors.http import tls_context
from ledgerlink.domain.accounts import CustomerAccount
from ledgerlink.identity.principal import Principal, system_principal
from ledgerlink.members.customer_mapping import CustomerMapping
from ledgerlink.runtime import Runtime
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import Connection
from ledgerlink.store.realtime_inbound_models import DEFAULT_INTERVAL_SECONDS, RealtimePoll
from ledgerlink.store.sync_models import SyncBaseline, SyncCursor, SyncRecord, SyncRun
from ledgerlink.sync import cursors, live_feed, poll_budget
from ledgerlink.sync import member_details as details
from ledgerlink.sync.cursors import HighWater
from ledgerlink.sync.datasets import DataSet, Policy
from ledgerlink.sync.plan import Checkpoint, PlanHashes, RecordItem
from ledgerlink.sync.starting import ACTIVE, policies_of, settings_for

log = structlog.get_logger("ledgerlink.sync.realtime_inbound")

#: The trigger of the daily sync run that keeps the polls' records (the sync log shows it).
TRIGGER: Final = "poll"
FIRST_RUN_NEEDED: Final = (
    "waiting for the first full sync of member details (Sync page): polling reads changes "
    "from where it ended"
)
#: Runs that are not full runs: their end says nothing about members they did not touch
#: (the polls' and the outbound real-time writes' daily runs, retries and applied plans).
NOT_FULL_RUNS: Final = (TRIGGER, "realtime", "retry", "plan", "replan")
#: Who the registry's audit entries name for a change a poll brought in.
PRINCIPAL: Final = system_principal("ledger poll")


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests a poll sends (retries included), so its cost is measured
    against the connection's budget rather than guessed."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _transport() -> CountingTransport:
    # deferred: httpx_aiohttp loads aiohttp (0.1 s); only a poll that opens a ledger needs it
    from httpx_aiohttp import AiohttpTransport

    return CountingTransport(AiohttpTransport(verify=tls_context()))


@dataclass
class PollResult:
    """What one poll did, for the job's log and the connection page."""

    connection_id: int
    polled: bool
    outcome: str
    changed: int = 0
    written: int = 0
    refused: int = 0
    requests: int = 0
    run_id: int | None = None


def poll_state(session: Session, connection_id: int) -> RealtimePoll:
    """The connection's poll row (made with the defaults when missing)."""
    found = session.get(RealtimePoll, connection_id)
    if found is None:
        found = RealtimePoll(
            connection_id=connection_id,
            enabled=True,
            interval_seconds=DEFAULT_INTERVAL_SECONDS,
            chain=0,
            last_requests=0,
            effective_seconds=DEFAULT_INTERVAL_SECONDS,
            last_outcome="",
            agreed_run_id=0,
        )
        session.add(found)
        session.flush()
    return found


def full_run_active(session: Session, connection_id: int) -> int | None:
    """The id of a queued or running member-details run (not a plan) of the connection."""
    for run_id, data_sets in session.execute(
        select(SyncRun.id, SyncRun.data_sets).where(
            SyncRun.connection_id == connection_id,
            SyncRun.status.in_(ACTIVE),
            SyncRun.dry_run.is_(False),
        )
    ):
        if DataSet.MEMBER_DETAILS.value in (data_sets or []):
            return int(run_id)
    return None


def rate_limit_of(connection: Connection) -> int | None:
    """Requests a minute the connection may send (``None``: no limit)."""
    model = connectors.descriptor(connection.kind).settings_model
    defaults = {name: info.default for name, info in model.model_fields.items()}
    return poll_budget.rate_limit(connection.settings or {}, defaults)


def polled_connections(session: Session) -> list[int]:
    """Active ledger connections with polling on (no row yet: on, the default)."""
    kinds = connectors.ledger_kinds()
    ids = session.scalars(
        select(Connection.id).where(Connection.kind.in_(kinds), Connection.is_active.is_(True))
    ).all()
    off = set(session.scalars(select(RealtimePoll.connection_id).where(~RealtimePoll.enabled)))
    return [i for i in ids if i not in off]


@dataclass
class _Start:
    connection: Connection
    until: datetime | None
    overlap: timedelta
    mapping: CustomerMapping | None = None
    policies: dict[str, Policy] = field(default_factory=dict)
    previous_poll: datetime | None = None


class Poll:
    """One poll of one connection."""

    def __init__(self, runtime: Runtime, connection_id: int, *, clock: Clock = SYSTEM_CLOCK):
        self.runtime = runtime
        self.db = runtime.db
        self.connection_id = connection_id
        self.clock = clock
        self.principal: Principal = PRINCIPAL

    async def __call__(self) -> PollResult:
        started = await in_thread(self._start)
        if isinstance(started, PollResult):
            return started
        transport = _transport()
        ledger = self.runtime.ledger_for(started.connection, transport)
        try:
            result = await self._poll(started, ledger)
        finally:
            await ledger.aclose()
        result.requests = transport.requests
        return result

    def _start(self) -> _Start | PollResult:
        with self.db.transaction() as session:
            connection = session.get(Connection, self.connection_id)
            if connection is None or connection.kind not in connectors.ledger_kinds():
                return PollResult(self.connection_id, False, "not a ledger connection")
            if not connection.is_active:
                return PollResult(self.connection_id, False, "the connection is not active")
            state = poll_state(session, self.connection_id)
            busy = full_run_active(session, self.connection_id)
            if busy is not None:
                return PollResult(
                    self.connection_id,
                    False,
                    f"waiting: full sync run {busy} is reading the same changes",
                )
            settings = settings_for(session, self.connection_id)
            until = state.ledger_until
            if until is None:  # start where the full runs got to, not from the beginning
                cursor = session.get(SyncCursor, (self.connection_id, DataSet.MEMBER_DETAILS.value))
                until = cursor.ledger_until if cursor is not None else None
            if until is None:
                # The first agreement of every link is a full run's work (a plan shows it
                # first); a poll only keeps links in agreement from where one ended.
                return PollResult(self.connection_id, False, FIRST_RUN_NEEDED)
            session.expunge(connection)
            return _Start(
                connection,
                until,
                timedelta(seconds=settings.overlap_seconds),
                policies=policies_of(settings),
                previous_poll=state.last_polled_at,
            )

    async def _poll(self, start: _Start, ledger: Ledger) -> PollResult:
        high_water = HighWater()
        by_customer = await in_thread(self._links)
        known: dict[str, CustomerAccount | None] = {}
        members: set[int] = set()
        seen = 0
        async for customer in ledger.customers(
            changed_since=cursors.since(start.until, start.overlap)
        ):
            seen += 1
            high_water.saw(customer.updated_at)
            member_id = by_customer.get(customer.id)
            if member_id is not None:
                known[customer.id] = None if customer.deleted else customer
                members.add(member_id)
        moved_to = high_water.moved_from(start.until)
        if not members:  # only the cursor moves
            finished = await in_thread(self._finish, [], {}, start, moved_to, known)
            if finished.polled:
                finished.outcome = f"{seen} changed customer(s) read, none linked"
            return finished
        plans = await in_thread(self._plans, sorted(members), known, start)
        changed = [p for p in plans if not p.unchanged]
        written: details.Written = {}
        if any(p.merge is not None and p.merge.to_ledger for p in changed):
            busy = await in_thread(self._busy)
            if busy is not None:
                return PollResult(
                    self.connection_id, False, f"waiting: full sync run {busy} started"
                )
            assert start.mapping is not None
            written = await details.write_ledger(ledger, changed, start.mapping)
        return await in_thread(self._finish, plans, written, start, moved_to, known)

    # -- reading ---------------------------------------------------------------------------

    def _links(self) -> dict[str, int]:
        with self.db.read() as session:
            return details.customer_links(session, self.connection_id)

    def _busy(self) -> int | None:
        with self.db.read() as session:
            return full_run_active(session, self.connection_id)

    def _plans(
        self, member_ids: list[int], known: dict[str, CustomerAccount | None], start: _Start
    ) -> list[details.MemberPlan]:
        with self.db.transaction() as session:
            start.mapping = CustomerMapping.load(
                session, self.runtime.mappings, start.connection.kind
            )
            links = details.linked_members(session, self.connection_id, member_ids)
            base = details.baselines(session, self.connection_id, member_ids)
        return [
            details.evaluate(
                linked,
                known.get(linked.customer_id),
                base.get(member_id),
                start.policies,
                start.mapping,
            )
            for member_id, linked in sorted(links.items())
        ]

    # -- writing ---------------------------------------------------------------------------

    def _finish(
        self,
        plans: list[details.MemberPlan],
        written: details.Written,
        start: _Start,
        moved_to: datetime | None,
        known: dict[str, CustomerAccount | None],
    ) -> PollResult:
        """One transaction: registry writes, baselines, the live feed, records, cursor."""
        now = self.clock.now()
        result = PollResult(self.connection_id, True, "")
        with self.db.transaction() as session:
            busy = full_run_active(session, self.connection_id)
            if busy is not None:  # it started while we read: it takes these changes
                return PollResult(
                    self.connection_id, False, f"waiting: full sync run {busy} started"
                )
            state = poll_state(session, self.connection_id)
            baselines: list[details.BaselineRow] = []
            records: list[RecordItem] = []
            for plan in plans:
                record = self._settle(session, plan, written, start, now, baselines, result)
                if record is not None:
                    records.append(record)
            details.store_baselines(session, baselines)
            if records:
                result.run_id = self._log_run(session, records, now, result)
            state.ledger_until = moved_to
            state.last_polled_at = now
            result.changed = sum(1 for p in plans if not p.unchanged)
            result.outcome = _summary(result, len(known))
        return result

    def _settle(
        self,
        session: Session,
        plan: details.MemberPlan,
        written: details.Written,
        start: _Start,
        now: datetime,
        baselines: list[details.BaselineRow],
        result: PollResult,
    ) -> RecordItem | None:
        member_id = plan.linked.member_id
        changed_at = _changed_at(plan, start.previous_poll, now)
        assert start.mapping is not None
        if plan.unchanged:
            if plan.merge is not None:  # both agree already; the baseline was missing or old
                baselines.append(
                    details.baseline_row(
                        self.connection_id, plan, plan.merge.result, None, start.mapping
                    )
                )
                live_feed.mark_in_agreement(
                    session, connection_id=self.connection_id, member_ids=[member_id], at=now
                )
            return None
        record = RecordItem(
            run_id=0,  # set once the run exists
            data_set=DataSet.MEMBER_DETAILS.value,
            record_key=plan.linked.number,
            member_id=member_id,
            direction=details.direction_of(plan),
            action="delete"
            if plan.deleted
            else ("conflict" if plan.merge and plan.merge.conflicts else "update"),
            status="done",
            changes=details.changes_of(plan),
            hashes=PlanHashes(plan.registry_hash, plan.ledger_hash),
        )
        if plan.deleted:
            details.unlink_deleted(session, self.principal, self.connection_id, plan)
            result.written += 1
            return _with(
                record,
                message="the customer was deleted in the ledger; the member was unlinked",
                fix="link the member to another customer, or create a new account",
            )
        assert plan.merge is not None
        write = written.get(member_id, details.LedgerWrite(True))
        if not write.ok:
            return self._refused(
                session, plan, record, changed_at, now, result, write.message, write.fix
            )
        if plan.merge.to_registry:
            with session.begin_nested():
                stored, problem, fix = details.write_registry(
                    session, self.principal, plan, connection_id=self.connection_id
                )
            if not stored:
                return self._refused(session, plan, record, changed_at, now, result, problem, fix)
        baselines.append(
            details.baseline_row(
                self.connection_id, plan, plan.merge.result, write.customer, start.mapping
            )
        )
        summary = _describe_changes(plan)
        live_feed.record_write(
            session,
            direction="to_registry",
            connection_id=self.connection_id,
            member_id=member_id,
            changed_at=changed_at,
            written_at=now,
            outcome="written",
            detail=f"{plan.linked.number}: {summary}",
        )
        result.written += 1
        return _with(record, message=summary)

    def _refused(
        self,
        session: Session,
        plan: details.MemberPlan,
        record: RecordItem,
        changed_at: datetime,
        now: datetime,
        result: PollResult,
        problem: str,
        fix: str,
    ) -> RecordItem:
        """A change one side refused: logged with the field and the fix; the others go on.
        The baseline is left as it was, so the next full run (or a retry) tries again."""
        result.refused += 1
        log.warning(
            "realtime.inbound.refused",
            connection=self.connection_id,
            member=plan.linked.number,
            problem=problem,
            fix=fix,
        )
        live_feed.record_write(
            session,
            direction="to_registry",
            connection_id=self.connection_id,
            member_id=plan.linked.member_id,
            changed_at=changed_at,
            written_at=now,
            outcome="refused",
            detail=f"{plan.linked.number}: {problem}; fix: {fix}",
        )
        return record.failed(problem, fix)

    def _log_run(
        self, session: Session, records: list[RecordItem], now: datetime, result: PollResult
    ) -> int:
        """Add the poll's records to the connection's poll run of the day (trigger
        ``poll``, made by the day's first poll that changed something): the sync log lists
        polls once a day, shows what they changed and refused, and "retry failed records"
        works on it. Only the connection's one poll chain writes to it."""
        run = todays_run(session, self.connection_id, now, self.principal.actor)
        counts = dict(run.counts or {})
        if result.written:
            counts["updated"] = counts.get("updated", 0) + result.written
        if result.refused:
            counts["failed"] = counts.get("failed", 0) + result.refused
        run.counts = counts
        run.total = run.done = (run.done or 0) + len(records)
        run.finished_at = now
        session.execute(insert(SyncRecord), [_with(r, run_id=run.id).row() for r in records])
        return run.id


def todays_run(session: Session, connection_id: int, now: datetime, actor: str) -> SyncRun:
    """The connection's poll run of the day (UTC)."""
    midnight = datetime.combine(cursors.as_utc(now).date(), time(), UTC)
    found = session.scalars(
        select(SyncRun)
        .where(
            SyncRun.connection_id == connection_id,
            SyncRun.trigger == TRIGGER,
            SyncRun.created_at >= midnight,
        )
        .order_by(SyncRun.id)
        .limit(1)
    ).first()
    if found is not None:
        return found
    run = SyncRun(
        connection_id=connection_id,
        trigger=TRIGGER,
        data_sets=[DataSet.MEMBER_DETAILS.value],
        dry_run=False,
        remap=False,
        status="finished",
        counts={},
        checkpoint=Checkpoint().with_done(DataSet.MEMBER_DETAILS.value).as_json(),
        total=0,
        done=0,
        requested_by=actor,
        created_at=now,
        started_at=now,
        finished_at=now,
    )
    session.add(run)
    session.flush()
    return run


def _with(record: RecordItem, **changes: object) -> RecordItem:
    return replace(record, **changes)  # type: ignore[arg-type]


def _changed_at(
    plan: details.MemberPlan, previous_poll: datetime | None, now: datetime
) -> datetime:
    """When the change happened, as well as we can tell on our clock: the ledger's own
    stamp, but not before the previous poll (which did not see it; a vendor clock behind
    ours would otherwise show hours of lag) and not after now (a clock ahead)."""
    stamp = plan.customer.updated_at if plan.customer is not None else None
    moment = cursors.as_utc(stamp) if stamp is not None else now
    if previous_poll is not None:
        moment = max(moment, cursors.as_utc(previous_poll))
    return min(moment, now)


def _describe_changes(plan: details.MemberPlan) -> str:
    assert plan.merge is not None
    parts = []
    if plan.merge.to_registry:
        parts.append("to registry: " + ", ".join(c.field for c in plan.merge.to_registry))
    if plan.merge.to_ledger:
        parts.append("to ledger: " + ", ".join(c.field for c in plan.merge.to_ledger))
    if plan.merge.conflicts:
        parts.append(
            "changed on both sides: "
            + ", ".join(f"{c.field} ({c.winner} value kept)" for c in plan.merge.conflicts)
        )
    return "; ".join(parts) or "both sides agree"


def _summary(result: PollResult, linked_read: int) -> str:
    if not result.changed:
        if linked_read:
            return f"{linked_read} linked customer(s) read, all already agreeing"
        return "no linked customer changed"
    parts = [f"{result.changed} member(s) changed", f"{result.written} written"]
    if result.refused:
        parts.append(f"{result.refused} refused (see the sync log)")
    return ", ".join(parts)


async def poll(runtime: Runtime, connection_id: int, *, clock: Clock = SYSTEM_CLOCK) -> PollResult:
    """Poll one connection once (the job calls this; so can a test)."""
    return await Poll(runtime, connection_id, clock=clock)()


# -- agreement from full runs --------------------------------------------------------------------


def mark_full_runs(session: Session, connection_id: int) -> int:
    """Full member-details runs that finished since the last look: each linked member is in
    agreement as of the run's end when the run left it so, that is when it has a baseline
    for its current customer, no failed record (of any run or poll) since that baseline,
    and no registry change since the run started. Returns how many runs were looked at."""
    state = poll_state(session, connection_id)
    runs = session.execute(
        select(SyncRun.id, SyncRun.started_at, SyncRun.finished_at, SyncRun.data_sets)
        .where(
            SyncRun.connection_id == connection_id,
            SyncRun.id > state.agreed_run_id,
            SyncRun.status == "finished",
            SyncRun.dry_run.is_(False),
            SyncRun.trigger.not_in(NOT_FULL_RUNS),
            SyncRun.source_run_id.is_(None),
        )
        .order_by(SyncRun.id)
    ).all()
    counted = 0
    for run_id, started_at, finished_at, data_sets in runs:
        state.agreed_run_id = max(state.agreed_run_id, int(run_id))
        if DataSet.MEMBER_DETAILS.value not in (data_sets or []) or finished_at is None:
            continue
        live_feed.mark_in_agreement(
            session,
            connection_id=connection_id,
            member_ids=_left_agreeing(session, connection_id, started_at or finished_at),
            at=finished_at,
        )
        counted += 1
    return counted


def _left_agreeing(session: Session, connection_id: int, run_started: datetime) -> list[int]:
    """Linked members with a baseline for their current customer, unchanged in the registry
    since ``run_started``, and with no failed record since their baseline was stored."""
    linked = (
        select(SyncBaseline.member_id)
        .join(
            MemberLinkRow,
            (MemberLinkRow.member_id == SyncBaseline.member_id)
            & (MemberLinkRow.connection_id == SyncBaseline.connection_id)
            & (MemberLinkRow.customer_id == SyncBaseline.customer_id),
        )
        .join(MemberRow, MemberRow.id == SyncBaseline.member_id)
        .where(
            SyncBaseline.connection_id == connection_id,
            MemberLinkRow.unlinked_at.is_(None),
            # changed in the registry after the run read it, and not by the run itself
            or_(
                MemberRow.updated_at <= run_started, MemberRow.updated_at <= SyncBaseline.synced_at
            ),
        )
    )
    failed_since = (
        select(SyncRecord.member_id)
        .join(SyncRun, SyncRun.id == SyncRecord.run_id)
        .join(
            SyncBaseline,
            (SyncBaseline.connection_id == SyncRun.connection_id)
            & (SyncBaseline.member_id == SyncRecord.member_id),
        )
        .where(
            SyncRun.connection_id == connection_id,
            SyncRecord.status == "failed",
            SyncRecord.created_at > SyncBaseline.synced_at,
        )
    )
    refused = set(session.scalars(failed_since))
    return [m for m in session.scalars(linked) if m not in refused]
