"""Executing a sync run page by page with checkpoints; plans and applying them.

Member details go a page of members at a time, and each page ends with one transaction
that stores the registry writes, the baselines, the run's records and the checkpoint
together, so a run killed anywhere resumes at the page that was not committed (its
ledger writes are updates to the same values: repeating them is harmless). Cursors move
only when a data set completes.

A *plan* is a dry run: the same evaluation, recorded as ``planned`` records with the
hashes of both sides. Applying a plan re-reads those members; if any side moved since the
plan, the plan is marked stale and a new plan is made instead of applying a guess.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_thread
from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.connectors.base import CardGateway, Ledger
from ledgerlink.domain.accounts import CustomerAccount
from ledgerlink.domain.periods import FinancialYear
from ledgerlink.identity.principal import Principal
from ledgerlink.jobs.registry import JobInterrupted
from ledgerlink.mapping.errors import SpecError
from ledgerlink.members.customer_mapping import CustomerMapping
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.db import Database
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import SyncCursor, SyncRecord, SyncRun
from ledgerlink.store.types import utcnow
from ledgerlink.sync import card_profiles as profiles
from ledgerlink.sync import cursors, ledger_view, tally
from ledgerlink.sync import member_details as details
from ledgerlink.sync.cursors import HighWater
from ledgerlink.sync.datasets import DataSet
from ledgerlink.sync.fields import registry_values, values_hash
from ledgerlink.sync.plan import Checkpoint, PlanHashes, RecordItem, load_plan
from ledgerlink.sync.starting import (
    SyncError,
    ledger_connection,
    policies_of,
    settings_for,
    start,
)
from ledgerlink.sync.tally import Tally

log = structlog.get_logger("ledgerlink.sync")
_Loaded = TypeVar("_Loaded")

PAGE: Final = 500
#: The progress bar is written after this many records (at most a page)...
PROGRESS_STEP: Final = 50
#: ...or this many seconds after it was last written, whichever comes first.
PROGRESS_SECONDS: Final = 1.0
#: Data sets read incrementally from the ledger: their cursor is the ledger's own clock.
INCREMENTAL: Final = (DataSet.MEMBER_DETAILS, DataSet.TRANSACTIONS)


@dataclass
class Progress:
    run_id: int
    data_set: str
    done: int
    total: int
    counts: dict[str, int]


ProgressCallback = Callable[[Progress], None]
#: Opens a PayTrace connection's gateway (for the card-profiles data set).
GatewayOpener = Callable[[Connection], CardGateway]

# -- executing -----------------------------------------------------------------------------------


class _Cancelled(Exception):
    pass


class Execution:
    """One run being executed against an open ledger."""

    def __init__(
        self,
        db: Database,
        run_id: int,
        ledger: Ledger,
        principal: Principal,
        on_progress: ProgressCallback | None = None,
        page_size: int = PAGE,
        open_gateway: GatewayOpener | None = None,
        *,
        mappings: MappingRepository,
        should_stop: Callable[[], bool] = lambda: False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.should_stop = should_stop
        self.clock = clock
        #: the progress bar is written when this many more records are done, or after
        #: PROGRESS_SECONDS with any (and at every page's commit)
        self.progress_step = max(1, min(page_size, PROGRESS_STEP))
        self._progress_written = (0, clock.monotonic())
        self._writing_progress = False
        self.page_size = page_size
        self.open_gateway = open_gateway
        self.mappings = mappings
        #: resuming an interrupted member-details pass (see _settle)
        self.resuming = False
        self.db = db
        self.run_id = run_id
        self.ledger = ledger
        self.principal = principal
        self.on_progress = on_progress or (lambda _: None)

    async def __call__(self) -> SyncRun:
        ended = await in_thread(self._begin)
        if ended is not None:
            return ended
        try:
            for data_set in self.data_sets:
                if self.checkpoint.is_done(data_set):
                    continue
                await self._data_set(DataSet(data_set))
            status = "planned" if self.dry_run else "finished"
            error = None
        except _Cancelled:
            status, error = "cancelled", None
        except JobInterrupted:
            log.info("sync.run_interrupted", run=self.run_id, done=self.done)
            raise  # the run stays running; its job runs again from the checkpoint
        except Exception as exc:  # recorded on the run, then re-raised for the job's retry
            await in_thread(self._finish, "failed", _describe(exc))
            raise
        return await in_thread(self._finish, status, error)

    def _begin(self) -> SyncRun | None:
        """Mark the run running and load what executing it needs; the run itself when it
        has already ended (nothing to do)."""
        with self.db.transaction() as session:
            run = session.get(SyncRun, self.run_id)
            if run is None:
                raise SyncError(f"there is no sync run {self.run_id}")
            if run.status in ("finished", "cancelled", "planned", "applied", "stale"):
                session.expunge(run)
                return run
            run.status = "running"
            run.started_at = run.started_at or utcnow()
            connection = ledger_connection(session, run.connection_id)
            settings = settings_for(session, run.connection_id)
            self.connection_id = connection.id
            self.periods = [
                FinancialYear.from_key(k)
                for k in connection.settings.get("accounting_periods") or []
            ]
            self.policies = policies_of(settings)
            self.overlap = timedelta(seconds=settings.overlap_seconds)
            self.data_sets = list(run.data_sets)
            self.dry_run = run.dry_run
            self.remap = run.remap
            self.source_run_id = run.source_run_id
            self.trigger = run.trigger
            self.checkpoint = Checkpoint.from_json(run.checkpoint)
            self.counts: dict[str, int] = dict(run.counts or {})
            self.tally = Tally.from_json(self.checkpoint.progress)
            if not self.tally.parts:  # a run started before runs kept their progress
                self.tally = tally.estimate(
                    session,
                    run.connection_id,
                    [d for d in self.data_sets if not self.checkpoint.is_done(d)],
                    source_run_id=run.source_run_id,
                    trigger=run.trigger,
                    remap=run.remap,
                    overlap_seconds=settings.overlap_seconds,
                )
                resumed = DataSet.MEMBER_DETAILS.value
                if self.checkpoint.resume_after(resumed):  # its committed pages: run.done
                    self.tally.set_done(resumed, run.done)
            run.total, run.done = self.total, self.done
        return None

    @property
    def total(self) -> int:
        return self.tally.total

    @property
    def done(self) -> int:
        return self.tally.done

    # -- plumbing ----------------------------------------------------------------------

    def _count(self, key: str, by: int = 1) -> None:
        if by:
            self.counts[key] = self.counts.get(key, 0) + by

    def _save(self, session: Session, data_set: str) -> None:
        run = session.get(SyncRun, self.run_id)
        assert run is not None
        run.counts = dict(self.counts)
        self.checkpoint = self.checkpoint.with_progress(self.tally.as_json())
        run.checkpoint = self.checkpoint.as_json()
        run.total, run.done = self.total, self.done
        self._progress_written = (self.done, self.clock.monotonic())
        self.on_progress(Progress(self.run_id, data_set, self.done, self.total, dict(self.counts)))

    async def _advance(self, data_set: str, by: int = 1) -> None:
        """``by`` more records of ``data_set`` done; the bar is written page by page."""
        self.tally.advance(data_set, by)
        await self._progress_moved(data_set)

    async def _progress_moved(self, data_set: str, *, now: bool = False) -> None:
        written, at = self._progress_written
        # at most about a hundred writes by count in a run, however large
        step = max(self.progress_step, self.total // 100)
        due = now or (
            self.done != written
            and (self.done - written >= step or self.clock.monotonic() - at >= PROGRESS_SECONDS)
        )
        if due and not self._writing_progress:  # concurrent writes: one writes for all
            self._writing_progress = True
            try:
                await in_thread(self._write_progress, data_set)
            finally:
                self._writing_progress = False

    def _write_progress(self, data_set: str) -> None:
        """Only the bar (done and total): counts, records and the checkpoint move together
        when a page commits."""
        done, total = self.done, self.total
        with self.db.transaction() as session:
            session.execute(
                update(SyncRun).where(SyncRun.id == self.run_id).values(done=done, total=total)
            )
        self._progress_written = (done, self.clock.monotonic())
        self.on_progress(Progress(self.run_id, data_set, done, total, dict(self.counts)))

    async def _check_cancel(self) -> None:
        """Between pages: stop here if the run was cancelled, or the job runner is
        stopping (everything before this point is committed)."""
        if self.should_stop():
            raise JobInterrupted
        if await in_thread(self._cancel_requested):
            raise _Cancelled

    def _cancel_requested(self) -> bool:
        with self.db.read() as session:
            return bool(
                session.scalar(select(SyncRun.cancel_requested).where(SyncRun.id == self.run_id))
            )

    def _finish(self, status: str, error: str | None) -> SyncRun:
        with self.db.transaction() as session:
            run = session.get(SyncRun, self.run_id)
            assert run is not None
            run.status = status
            run.error = error
            run.counts = dict(self.counts)
            self.checkpoint = self.checkpoint.with_progress(self.tally.as_json())
            run.checkpoint = self.checkpoint.as_json()
            run.total, run.done = self.total, self.done
            run.finished_at = utcnow()
            audit.record(
                session,
                actor=self.principal.actor,
                action=f"sync.{status}",
                entity_type="sync_run",
                entity_id=self.run_id,
                after={"counts": run.counts, "error": error},
            )
            session.flush()
            session.expunge(run)
        log.info("sync.run_ended", run=self.run_id, status=status, counts=self.counts)
        return run

    def _cursor(self, session: Session, data_set: DataSet) -> SyncCursor:
        cursor = session.get(SyncCursor, (self.connection_id, data_set.value))
        if cursor is None:
            cursor = SyncCursor(connection_id=self.connection_id, data_set=data_set.value)
            session.add(cursor)
            session.flush()
        return cursor

    # -- data sets ---------------------------------------------------------------------

    async def _data_set(self, data_set: DataSet) -> None:
        moved_to = utcnow()  # the registry's cursor: our own clock on our own rows
        self.high_water = HighWater()  # the ledger's: its own clock (see sync.cursors)
        registry_until, ledger_until = await in_thread(self._cursor_now, data_set)
        registry_since = cursors.since(registry_until, self.overlap)
        ledger_since = cursors.since(ledger_until, self.overlap)
        if data_set is DataSet.MEMBER_DETAILS and self.remap and self.source_run_id is None:
            await self._member_details(None, None)  # every linked member
        elif data_set is DataSet.MEMBER_DETAILS:
            await self._member_details(registry_since, ledger_since)
        elif data_set is DataSet.CARD_PROFILES:
            await self._card_profiles()
        elif data_set is DataSet.BALANCES:
            counts = await ledger_view.refresh_balances(
                self.db, self.ledger, self.connection_id, tick=lambda: self._advance(data_set.value)
            )
            for key, value in counts.as_dict().items():
                self._count(f"balances_{key}", value)
        else:
            counts = await ledger_view.refresh_transactions(
                self.db,
                self.ledger,
                self.connection_id,
                ledger_since,
                self.periods,
                tick=lambda: self._advance(data_set.value),
            )
            self.high_water = counts.high_water
            for key, value in counts.as_dict().items():
                self._count(f"transactions_{key}", value)
        ledger_moved_to = (
            self.high_water.moved_from(ledger_until)
            if data_set in INCREMENTAL
            else moved_to  # read in full every run: the cursor only says when
        )
        await in_thread(self._complete, data_set, moved_to, ledger_moved_to)

    def _cursor_now(self, data_set: DataSet) -> tuple[datetime | None, datetime | None]:
        """(registry side, ledger side) of the data set's cursor."""
        with self.db.read() as session:
            cursor = session.get(SyncCursor, (self.connection_id, data_set.value))
            return (cursor.registry_until, cursor.ledger_until) if cursor else (None, None)

    def _complete(
        self, data_set: DataSet, registry_until: datetime, ledger_until: datetime | None
    ) -> None:
        """The data set is done: move its cursors (not for a plan) and record it."""
        with self.db.transaction() as session:
            # A plan moves no cursor, and neither does a follow-up (a retry or an applied
            # plan looks at a few members only: moving the cursor would skip the changes
            # made since the last full run to every other member).
            if not self.dry_run and self.source_run_id is None:
                cursor = self._cursor(session, data_set)
                cursor.registry_until = registry_until
                cursor.ledger_until = ledger_until
            self.checkpoint = self.checkpoint.with_done(data_set.value)
            self.tally.finish(data_set.value)
            self._save(session, data_set.value)

    async def _card_profiles(self) -> None:
        """Ledger customers ↔ PayTrace profiles (see :mod:`ledgerlink.sync.card_profiles`)."""
        own, paytrace = await in_thread(self._connections)
        if paytrace is None or self.open_gateway is None:
            self._count("card_profiles_skipped")
            self.tally.advance(profiles.DATA_SET)  # its one record: the data set itself
            message, fix = await in_thread(self._no_gateway, own)
            await in_thread(self._record_problem, profiles.DATA_SET, message, fix)
            return
        mapping = await in_thread(self._load_profile_mapping, own.kind)
        gateway = self.open_gateway(paytrace)
        try:
            found = await profiles.pairs(self.db, self.ledger, gateway, own)
            retried = await in_thread(self._retried_profiles)
            if retried is not None:
                found = [pair for pair in found if pair.key in retried]
            self.tally.expect(profiles.DATA_SET, len(found))
            await self._progress_moved(profiles.DATA_SET, now=True)
            agreed = await in_thread(self._profile_baselines)
            records: list[RecordItem] = []
            if retried is None:  # members whose customer has no profile: say what to do
                missing, records = await in_thread(self._without_profile, found)
                if missing:
                    self._count("profiles_missing", missing)
            settled: list[tuple[profiles.Pair, dict[str, str]]] = []
            try:
                for pair in found:
                    await self._check_cancel()
                    outcome = profiles.evaluate(pair, agreed.get(pair.key), self.policies, mapping)
                    await self._advance(profiles.DATA_SET)
                    if not outcome.changed:
                        self._count("profiles_unchanged")
                        if agreed.get(pair.key) != outcome.result and not self.dry_run:
                            settled.append((pair, outcome.result))
                        continue
                    record = self._profile_record(pair, outcome)
                    if self.dry_run:
                        records.append(record)
                        self._count("profiles_to_update")
                        continue
                    ok, message = await profiles.apply(pair, outcome, self.ledger, gateway, mapping)
                    if ok:
                        settled.append((pair, outcome.result))
                        self._count("profiles_updated")
                    else:
                        record = record.failed(
                            message, "check the value in PayTrace and the ledger, then retry"
                        )
                        self._count("failed")
                    records.append(record)  # once its writes are over, however they went
            finally:
                # what was written is recorded, also when the run stops between pairs
                await in_thread(self._store_profiles, settled, records)
        finally:
            await gateway.aclose()

    def _connections(self) -> tuple[Connection, Connection | None]:
        """This run's ledger connection and the PayTrace connection posting to it."""
        with self.db.read() as session:
            own = ledger_connection(session, self.connection_id)
            session.expunge(own)
            return own, profiles.gateway_connection(session, self.connection_id)

    def _no_gateway(self, own: Connection) -> tuple[str, str]:
        with self.db.read() as session:
            return profiles.no_gateway_problem(session, own)

    def _retried_profiles(self) -> set[str] | None:
        """Retrying a run: the PayTrace customer ids whose profiles failed (None: every
        pair — not a retry, or the data set could not run at all the last time)."""
        if self.trigger != "retry" or self.source_run_id is None:
            return None
        with self.db.read() as session:
            keys = set(
                session.scalars(
                    select(SyncRecord.record_key).where(
                        SyncRecord.run_id == self.source_run_id,
                        SyncRecord.status == "failed",
                        SyncRecord.data_set == profiles.DATA_SET,
                    )
                )
            )
        return None if not keys or profiles.WHOLE_DATA_SET in keys else keys

    def _load_profile_mapping(self, kind: str) -> profiles.ProfileMapping:
        with self.db.transaction() as session:
            mapping = self._specs(
                lambda: profiles.ProfileMapping.load(session, self.mappings, kind)
            )
            self._record_versions(session, mapping.versions)
        return mapping

    def _without_profile(self, found: list[profiles.Pair]) -> tuple[int, list[RecordItem]]:
        with self.db.read() as session:
            paired = {pair.customer.id for pair in found}
            return profiles.without_profile(session, self.run_id, self.connection_id, paired)

    def _profile_baselines(self) -> dict[str, dict[str, str]]:
        with self.db.read() as session:
            return profiles.baselines(session, self.connection_id)

    def _store_profiles(
        self, settled: list[tuple[profiles.Pair, dict[str, str]]], records: list[RecordItem]
    ) -> None:
        with self.db.transaction() as session:
            for pair, values in settled:
                profiles.store_baseline(session, self.connection_id, pair, values)
            if records:
                session.execute(insert(SyncRecord), [r.row() for r in records])

    def _profile_record(self, pair: profiles.Pair, outcome: Any) -> RecordItem:
        to = {"paytrace" if outcome.to_registry else "", "ledger" if outcome.to_ledger else ""}
        to.discard("")
        if outcome.conflicts:
            self._count("conflicts")
        return RecordItem(
            run_id=self.run_id,
            data_set=profiles.DATA_SET,
            record_key=pair.key,
            member_id=None,
            direction="both" if len(to) == 2 else f"to_{to.pop()}",
            action="conflict" if outcome.conflicts else "update",
            status="planned" if self.dry_run else "done",
            changes=profiles.changes(outcome),
            message=f"PayTrace profile {pair.key} ↔ {pair.customer.number} {pair.customer.name}",
        )

    def _record_problem(self, data_set: str, message: str, fix: str) -> None:
        """A data set that could not run at all: one failed record for it, counted as
        failed like any other (the run's counts agree with its records)."""
        self._count("failed")
        with self.db.transaction() as session:
            session.add(
                SyncRecord(
                    run_id=self.run_id,
                    data_set=data_set,
                    record_key=profiles.WHOLE_DATA_SET,
                    member_id=None,
                    direction="none",
                    action="skip",
                    status="failed",
                    changes={},
                    message=message[:1000],  # the columns' sizes
                    fix=fix[:500],
                )
            )

    async def _selection(
        self, registry_since: datetime | None, ledger_since: datetime | None
    ) -> tuple[list[int], dict[str, CustomerAccount | None]]:
        """Member ids to look at, and the customers the incremental read already gave."""
        if self.source_run_id is not None:
            return await in_thread(self._followed_up, self.source_run_id), {}
        by_customer, changed = await in_thread(self._registry_side, registry_since)
        known: dict[str, CustomerAccount | None] = {}
        async for customer in self.ledger.customers(changed_since=ledger_since):
            self.high_water.saw(customer.updated_at)
            member_id = by_customer.get(customer.id)
            if member_id is not None:
                known[customer.id] = None if customer.deleted else customer
                changed.add(member_id)
        return sorted(changed), known

    def _followed_up(self, source_run_id: int) -> list[int]:
        """The members a plan being applied planned, or a retried run failed."""
        wanted = "failed" if self.trigger == "retry" else "planned"
        with self.db.read() as session:
            found = session.scalars(
                select(SyncRecord.member_id).where(
                    SyncRecord.run_id == source_run_id,
                    SyncRecord.status == wanted,
                    SyncRecord.data_set == DataSet.MEMBER_DETAILS.value,
                )
            )
            return sorted({int(i) for i in found if i is not None})

    def _registry_side(
        self, since: datetime | None, *, changed: bool = True
    ) -> tuple[dict[str, int], set[int]]:
        """(linked member by customer id, members changed in the registry since ``since``;
        empty when ``changed`` is false)."""
        with self.db.read() as session:
            return (
                details.customer_links(session, self.connection_id),
                details.registry_changed(session, self.connection_id, since) if changed else set(),
            )

    async def _member_details(
        self, registry_since: datetime | None, ledger_since: datetime | None
    ) -> None:
        key = DataSet.MEMBER_DETAILS.value
        self.mapping = await in_thread(self._load_mapping)
        member_ids, known = await self._selection(registry_since, ledger_since)
        after = self.checkpoint.resume_after(key)
        pending = [m for m in member_ids if m > after]
        self.resuming = bool(after)
        self.tally.expect(key, len(member_ids))  # the estimate becomes the real number
        await self._progress_moved(key, now=True)
        if (
            self.source_run_id is not None
            and self.trigger == "plan"
            and await self._plan_moved(pending)
        ):
            return
        if len(pending) - len(known) > details.FULL_READ_THRESHOLD:
            by_customer, _ = await in_thread(self._registry_side, None, changed=False)
            wanted = set(pending)
            unread = {c for c, m in by_customer.items() if m in wanted} - set(known)
            if len(unread) > details.FULL_READ_THRESHOLD:  # one paged read beats many single ones
                async for customer in self.ledger.customers():
                    self.high_water.saw(customer.updated_at)
                    known.setdefault(customer.id, customer)
        # The customers read above live until the data set ends: keep the garbage collector
        # from walking them again and again (a full collection over 100,000 customers costs
        # more than the page it interrupts).
        gc.freeze()
        try:
            for offset in range(0, len(pending), self.page_size):
                await self._check_cancel()
                await self._page(pending[offset : offset + self.page_size], known)
        finally:
            gc.unfreeze()

    def _load_mapping(self) -> CustomerMapping:
        """The member ↔ customer specs this run maps with, recorded on the run."""
        with self.db.transaction() as session:
            mapping = self._specs(
                lambda: CustomerMapping.load(session, self.mappings, self.ledger.system)
            )
            self._record_versions(session, mapping.versions)
        return mapping

    def _specs(self, load: Callable[[], _Loaded]) -> _Loaded:
        try:
            return load()
        except SpecError as exc:
            raise SyncError(
                "a mapping spec this run needs cannot be used: "
                + "; ".join(p.message for p in exc.problems)
                + ". Correct it under Mappings (or roll it back), then run again."
            ) from None

    def _record_versions(self, session: Session, versions: dict[str, str]) -> None:
        """Add the spec versions a data set maps with to the run (a resumed run that finds
        a newer version records both: ``name@v3 then name@v4``)."""
        run = session.get(SyncRun, self.run_id)
        assert run is not None
        used = dict(run.mapping_versions or {})
        for name, version in versions.items():
            earlier = used.get(name)
            if not earlier:
                used[name] = version
            elif version not in earlier.split(" then "):
                used[name] = f"{earlier} then {version}"
        run.mapping_versions = used

    async def _plan_moved(self, member_ids: list[int]) -> bool:
        """Applying a plan: did either side of any planned member move since?"""
        assert self.source_run_id is not None
        planned, links = await in_thread(self._planned, self.source_run_id, member_ids)
        customers = await details.read_customers(
            self.ledger, {m.customer_id for m in links.values()}, {}
        )
        for member_id, hashes in planned.items():
            linked = links.get(member_id or 0)
            customer = customers.get(linked.customer_id) if linked else None
            registry_now = values_hash(registry_values(linked.member)) if linked else ""
            ledger_now = details.raw_hash(customer) if customer is not None else ""
            if hashes.registry != registry_now or hashes.ledger != ledger_now:
                await in_thread(self._replan, self.source_run_id)
                self._count("stale_plan")
                return True
        return False

    def _planned(
        self, plan_id: int, member_ids: list[int]
    ) -> tuple[dict[int | None, PlanHashes], dict[int, details.LinkedMember]]:
        with self.db.read() as session:
            return (
                load_plan(session, plan_id).hashes_by_member,
                details.linked_members(session, self.connection_id, member_ids),
            )

    def _replan(self, plan_id: int) -> None:
        """The plan is stale: mark it so and make a new plan in its place."""
        with self.db.transaction() as session:
            stale = session.get(SyncRun, plan_id)
            if stale is not None:
                stale.status = "stale"
            replan = start(
                session,
                None,
                self.principal,
                self.connection_id,
                [DataSet.MEMBER_DETAILS.value],
                trigger="replan",
                dry_run=True,
            )
            self.counts["replanned_as"] = replan.id
            self.checkpoint = self.checkpoint.with_done(DataSet.MEMBER_DETAILS.value)

    async def _page(self, member_ids: list[int], known: dict[str, CustomerAccount | None]) -> None:
        key = DataSet.MEMBER_DETAILS.value
        committed = self.tally.done_of(key)
        links, base = await in_thread(self._page_state, member_ids)
        wanted = {m.customer_id for m in links.values()}
        # Customers the reads did not return are asked for one by one: only a ledger that
        # answers "no such customer" makes a member count as deleted there.
        customers = await details.read_customers(self.ledger, wanted, known)
        plans = [
            details.evaluate(
                linked,
                customers.get(linked.customer_id),
                base.get(mid),
                self.policies,
                self.mapping,
                remap=self.remap,
            )
            for mid, linked in sorted(links.items())
        ]
        written: details.Written = {}
        writes = 0
        if not self.dry_run:
            changed = [p for p in plans if not p.unchanged]
            writes = sum(1 for p in changed if p.merge is not None and p.merge.to_ledger)
        # the bar moves as the page goes: members needing no ledger write are done now,
        # the others as each write returns (the page's commit then says exactly)
        await self._advance(key, len(member_ids) - writes)
        if writes:
            written = await details.write_ledger(
                self.ledger, changed, self.mapping, on_written=lambda: self._advance(key)
            )
        await in_thread(self._commit_page, member_ids, plans, written, committed)
        self.mapping.forget()

    def _page_state(
        self, member_ids: list[int]
    ) -> tuple[dict[int, details.LinkedMember], dict[int, details.Baseline]]:
        """The page's links and the values both sides last agreed on."""
        with self.db.read() as session:
            return (
                details.linked_members(session, self.connection_id, member_ids),
                details.baselines(session, self.connection_id, member_ids),
            )

    def _commit_page(
        self,
        member_ids: list[int],
        plans: list[details.MemberPlan],
        written: details.Written,
        committed: int,
    ) -> None:
        """One transaction: registry writes, baselines, records and the checkpoint."""
        page = _Page()
        with self.db.transaction() as session:
            for plan in plans:
                self._settle(session, plan, written, page)
            details.store_baselines(session, page.baselines)
            if page.records:
                session.execute(insert(SyncRecord), [r.row() for r in page.records])
            self.tally.set_done(DataSet.MEMBER_DETAILS.value, committed + len(member_ids))
            self.checkpoint = self.checkpoint.with_page(
                DataSet.MEMBER_DETAILS.value, max(member_ids)
            )
            self._save(session, DataSet.MEMBER_DETAILS.value)

    def _settle(
        self,
        session: Session,
        plan: details.MemberPlan,
        written: details.Written,
        page: _Page,
    ) -> None:
        if plan.unchanged:
            earlier = details.written_before(plan) if self.resuming and not self.dry_run else None
            if not self.dry_run and plan.merge is not None:
                # both sides already agree, but the baseline was missing or old: record it
                page.baselines.append(
                    details.baseline_row(
                        self.connection_id, plan, plan.merge.result, None, self.mapping
                    )
                )
            if earlier is None:
                self._count("unchanged")
                return
            # This run wrote it before it was interrupted (killed after the write, before
            # the page's commit): the log still shows the change, once.
            side = next(iter(earlier.values()))["side"]
            page.records.append(
                RecordItem(
                    run_id=self.run_id,
                    data_set=DataSet.MEMBER_DETAILS.value,
                    record_key=plan.linked.number,
                    member_id=plan.linked.member_id,
                    direction=f"to_{side}",
                    action="update",
                    status="done",
                    changes=earlier,
                    message="written before the run was interrupted; both sides agree",
                )
            )
            self._count("updated")
            return
        record = RecordItem(
            run_id=self.run_id,
            data_set=DataSet.MEMBER_DETAILS.value,
            record_key=plan.linked.number,
            member_id=plan.linked.member_id,
            direction=details.direction_of(plan),
            action="delete"
            if plan.deleted
            else ("conflict" if plan.merge and plan.merge.conflicts else "update"),
            status="planned" if self.dry_run else "done",
            changes=details.changes_of(plan),
            hashes=PlanHashes(plan.registry_hash, plan.ledger_hash),
        )
        page.records.append(self._settle_change(session, plan, written, page, record))

    def _settle_change(
        self,
        session: Session,
        plan: details.MemberPlan,
        written: details.Written,
        page: _Page,
        record: RecordItem,
    ) -> RecordItem:
        """Store what a changed member's plan says (unless planning); the record as it ends."""
        if plan.merge is not None and plan.merge.conflicts:
            self._count("conflicts")
        if self.dry_run:
            self._count("deleted" if plan.deleted else "to_update")
            return replace(record, message=_summary(plan))
        if plan.deleted:
            details.unlink_deleted(session, self.principal, self.connection_id, plan)
            self._count("deleted")
            return replace(
                record,
                message="the customer was deleted in the ledger; the member was unlinked",
                fix="link the member to another customer, or create a new account",
            )
        assert plan.merge is not None
        write = written.get(plan.linked.member_id, details.LedgerWrite(True))
        if not write.ok:
            self._count("failed")
            return record.failed(write.message, write.fix)
        if plan.merge.to_registry:
            with session.begin_nested():
                stored, problem, fix = details.write_registry(
                    session, self.principal, plan, connection_id=self.connection_id
                )
            if not stored:
                self._count("failed")
                return record.failed(problem, fix)
        page.baselines.append(
            details.baseline_row(
                self.connection_id, plan, plan.merge.result, write.customer, self.mapping
            )
        )
        self._count("updated")
        return replace(record, message=_summary(plan))


@dataclass
class _Page:
    """What one page writes to the database, in bulk, in its closing transaction."""

    baselines: list[details.BaselineRow] = field(default_factory=list)
    records: list[RecordItem] = field(default_factory=list)


def _summary(plan: details.MemberPlan) -> str:
    if plan.deleted:
        return "deleted in the ledger: the member will be unlinked"
    assert plan.merge is not None
    parts = []
    if plan.merge.to_ledger:
        parts.append("to ledger: " + ", ".join(c.field for c in plan.merge.to_ledger))
    if plan.merge.to_registry:
        parts.append("to registry: " + ", ".join(c.field for c in plan.merge.to_registry))
    if plan.merge.conflicts:
        parts.append(
            "changed on both sides since the last sync: "
            + ", ".join(f"{c.field} ({_SIDES[c.winner]} value kept)" for c in plan.merge.conflicts)
        )
    if plan.merge.first_sync:
        parts.append(
            "first sync, the two sides differed: "
            + ", ".join(f"{c.field} ({_SIDES[c.winner]} value kept)" for c in plan.merge.first_sync)
        )
    return "; ".join(parts)


#: How a record's message names the side whose value was kept.
_SIDES: Final = {"registry": "member registry", "ledger": "ledger"}


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message)[:1000]


async def execute(
    db: Database,
    run_id: int,
    ledger: Ledger,
    principal: Principal,
    on_progress: ProgressCallback | None = None,
    page_size: int = PAGE,
    open_gateway: GatewayOpener | None = None,
    *,
    mappings: MappingRepository,
    should_stop: Callable[[], bool] = lambda: False,
) -> SyncRun:
    """Execute (or resume) a run. ``open_gateway`` opens the PayTrace connection for the
    card-profiles data set; without it that data set is reported as skipped. ``mappings``
    is the installation's repository (``Runtime.mappings``)."""
    return await Execution(
        db,
        run_id,
        ledger,
        principal,
        on_progress,
        page_size,
        open_gateway,
        mappings=mappings,
        should_stop=should_stop,
    )()


def _connection_of(db: Database, run_id: int) -> Connection | None:
    with db.read() as session:
        run = session.get(SyncRun, run_id)
        connection = session.get(Connection, run.connection_id) if run is not None else None
        if connection is not None:
            session.expunge(connection)
        return connection


async def execute_for(
    runtime: Runtime,
    run_id: int,
    principal: Principal,
    *,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SyncRun | None:
    """Execute (or resume) a run with everything it needs from the composition root: the
    ledger of its connection, PayTrace gateways, the installation's mapping specs. The
    CLI and the job both run a sync through here. ``None``: the run or its connection
    is gone."""
    connection = await in_thread(_connection_of, runtime.db, run_id)
    if connection is None:
        return None
    ledger = runtime.ledger_for(connection)
    try:
        return await execute(
            runtime.db,
            run_id,
            ledger,
            principal,
            on_progress,
            page_size=runtime.settings.sync_page_size,
            open_gateway=runtime.gateway_for,
            mappings=runtime.mappings,
            should_stop=should_stop,
        )
    finally:
        await ledger.aclose()
