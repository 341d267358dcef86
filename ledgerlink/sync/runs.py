"""Sync runs: start, execute page by page with checkpoints, cancel, plan and apply.

A run is a row (``sync_runs``) created with its job in one transaction. Executing it
works through the run's data sets; member details go a page of members at a time, and
each page ends with one transaction that stores the registry writes, the baselines, the
run's records and the checkpoint together, so a run killed anywhere resumes at the page
that was not committed (its ledger writes are updates to the same values: repeating
them is harmless). Cursors move only when a data set completes.

A *plan* is a dry run: the same evaluation, recorded as ``planned`` records with the
hashes of both sides. Applying a plan re-reads those members; if any side moved since the
plan, the plan is marked stale and a new plan is made instead of applying a guess.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import structlog
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ledgerlink.connectors.base import CardGateway, Ledger
from ledgerlink.domain.periods import FinancialYear
from ledgerlink.identity.principal import Principal, job_principal
from ledgerlink.jobs.port import JobQueue
from ledgerlink.jobs.registry import JobContext, JobInterrupted, RetryPolicy, tasks
from ledgerlink.mapping.errors import SpecError
from ledgerlink.members.customer_mapping import CustomerMapping
from ledgerlink.store import audit
from ledgerlink.store.db import Database
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import SyncCursor, SyncRecord, SyncRun, SyncSettings
from ledgerlink.store.types import utcnow
from ledgerlink.sync import card_profiles as profiles
from ledgerlink.sync import ledger_view
from ledgerlink.sync import member_details as details
from ledgerlink.sync.datasets import DataSet, Policy
from ledgerlink.sync.fields import registry_values, values_hash

log = structlog.get_logger("ledgerlink.sync")
_Loaded = TypeVar("_Loaded")

TASK: Final = "sync.run"
PAGE: Final = 500
ACTIVE: Final = ("queued", "running")
LEDGER_KINDS: Final = ("sbc", "sage500")


class SyncError(Exception):
    """A run cannot start or continue; the message says why and what to do."""


class SyncRunNotFound(SyncError):
    pass


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


# -- settings ---------------------------------------------------------------------------------


def settings_for(session: Session, connection_id: int) -> SyncSettings:
    found = session.get(SyncSettings, connection_id)
    if found is None:
        found = SyncSettings(
            connection_id=connection_id,
            data_sets=[d.value for d in DataSet],
            field_policies={},
            overlap_seconds=300,
        )
        session.add(found)
        session.flush()
    return found


def save_settings(
    session: Session,
    principal: Principal,
    connection_id: int,
    *,
    data_sets: list[str],
    policies: dict[str, str],
    overlap_seconds: int,
) -> SyncSettings:
    """Store what the Sync Settings page chose; refuses unknown names with what is allowed."""
    from ledgerlink.sync.datasets import FIELDS

    _ledger_connection(session, connection_id)
    known_sets = {d.value for d in DataSet}
    if not data_sets or any(d not in known_sets for d in data_sets):
        raise SyncError(f"data sets: choose one or more of {', '.join(sorted(known_sets))}")
    known_policies = {p.value for p in Policy}
    for name, value in policies.items():
        if name not in FIELDS:
            raise SyncError(
                f"policy for {name!r}: that is not a synced field; use one of {', '.join(FIELDS)}"
            )
        if value not in known_policies:
            allowed = ", ".join(sorted(known_policies))
            raise SyncError(f"policy for {name!r}: {value!r} is not a policy; use {allowed}")
    if not 0 <= overlap_seconds <= 86_400:
        raise SyncError("overlap: give 0 to 86400 seconds (300 is a safe default)")
    settings = settings_for(session, connection_id)
    before = {
        "data_sets": settings.data_sets,
        "policies": settings.field_policies,
        "overlap": settings.overlap_seconds,
    }
    settings.data_sets = [DataSet(d).value for d in data_sets]
    settings.field_policies = dict(policies)
    settings.overlap_seconds = overlap_seconds
    audit.record(
        session,
        actor=principal.actor,
        action="sync.settings_changed",
        entity_type="connection",
        entity_id=connection_id,
        before=before,
        after={
            "data_sets": settings.data_sets,
            "policies": settings.field_policies,
            "overlap": overlap_seconds,
        },
    )
    return settings


def policies_of(settings: SyncSettings) -> dict[str, Policy]:
    return {field: Policy(value) for field, value in (settings.field_policies or {}).items()}


# -- starting -------------------------------------------------------------------------------------


def _ledger_connection(session: Session, connection_id: int) -> Connection:
    connection = session.get(Connection, connection_id)
    if connection is None or connection.kind not in LEDGER_KINDS:
        raise SyncError(
            f"connection {connection_id} is not a Sage Business Cloud or Sage 500 connection"
        )
    return connection


def start(
    session: Session,
    jobs: JobQueue | None,
    principal: Principal,
    connection_id: int,
    data_sets: list[str] | None = None,
    *,
    trigger: str = "manual",
    dry_run: bool = False,
    source_run_id: int | None = None,
    remap: bool = False,
) -> SyncRun:
    """Record a run and enqueue its job (``jobs`` None: the caller runs it in-process).
    ``remap``: write every linked customer the member → customer spec now gives (after a
    spec change), not only the members that changed."""
    connection = _ledger_connection(session, connection_id)
    chosen = data_sets or list(settings_for(session, connection_id).data_sets)
    unknown = [d for d in chosen if d not in DataSet.__members__.values()]
    if unknown or not chosen:
        known = ", ".join(d.value for d in DataSet)
        raise SyncError(f"unknown data set(s) {', '.join(unknown) or '(none chosen)'}; use {known}")
    if remap:
        chosen = [DataSet.MEMBER_DETAILS.value]  # re-applying specs is a member-details run
    busy = session.scalars(
        select(SyncRun).where(
            SyncRun.connection_id == connection_id,
            SyncRun.status.in_(ACTIVE),
            SyncRun.dry_run.is_(False),
        )
    ).all()
    if not dry_run:
        for other in busy:
            overlap = set(other.data_sets) & set(chosen)
            if overlap:
                raise SyncError(
                    f"run {other.id} of {', '.join(sorted(overlap))} on {connection.name} is "
                    f"still {other.status}; wait for it or cancel it first"
                )
    run = SyncRun(
        connection_id=connection_id,
        trigger=trigger,
        data_sets=[DataSet(d).value for d in chosen],
        dry_run=dry_run,
        remap=remap,
        status="queued",
        counts={},
        checkpoint={},
        requested_by=principal.actor,
        source_run_id=source_run_id,
    )
    session.add(run)
    session.flush()
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
        action="sync.planned" if dry_run else "sync.started",
        entity_type="sync_run",
        entity_id=run.id,
        after={
            "connection_id": connection_id,
            "data_sets": run.data_sets,
            "trigger": trigger,
            "remap": remap,
        },
    )
    return run


def start_follow_up(
    session: Session, jobs: JobQueue | None, principal: Principal, run_id: int, trigger: str
) -> SyncRun:
    """Apply a plan (``trigger`` "plan") or run a run's failed records again ("retry")."""
    source = session.get(SyncRun, run_id)
    if source is None:
        raise SyncRunNotFound(f"there is no sync run {run_id}")
    if trigger == "plan" and source.status != "planned":
        raise SyncError(f"run {run_id} is {source.status}, not a plan to apply; make a new plan")
    return start(
        session,
        jobs,
        principal,
        source.connection_id,
        [DataSet.MEMBER_DETAILS.value],
        trigger=trigger,
        source_run_id=run_id,
        remap=source.remap,
    )


def request_cancel(session: Session, principal: Principal, run_id: int) -> SyncRun:
    run = session.get(SyncRun, run_id)
    if run is None:
        raise SyncError(f"there is no sync run {run_id}")
    if run.status not in ACTIVE:
        raise SyncError(
            f"run {run_id} is {run.status}; only a queued or running run can be cancelled"
        )
    run.cancel_requested = True
    if run.status == "queued":
        run.status = "cancelled"
        run.finished_at = utcnow()
    audit.record(
        session,
        actor=principal.actor,
        action="sync.cancel_requested",
        entity_type="sync_run",
        entity_id=run_id,
    )
    return run


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
    ) -> None:
        self.should_stop = should_stop
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
        with self.db.transaction() as session:
            run = session.get(SyncRun, self.run_id)
            if run is None:
                raise SyncError(f"there is no sync run {self.run_id}")
            if run.status in ("finished", "cancelled", "planned", "applied", "stale"):
                session.expunge(run)
                return run
            run.status = "running"
            run.started_at = run.started_at or utcnow()
            connection = _ledger_connection(session, run.connection_id)
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
            self.checkpoint = dict(run.checkpoint or {})
            self.counts: dict[str, int] = dict(run.counts or {})
            self.total, self.done = run.total, run.done
        try:
            for data_set in self.data_sets:
                if self.checkpoint.get(data_set) == "done":
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
            self._finish("failed", _describe(exc))
            raise
        return self._finish(status, error)

    # -- plumbing ----------------------------------------------------------------------

    def _count(self, key: str, by: int = 1) -> None:
        if by:
            self.counts[key] = self.counts.get(key, 0) + by

    def _save(self, session: Session, data_set: str) -> None:
        run = session.get(SyncRun, self.run_id)
        assert run is not None
        run.counts = dict(self.counts)
        run.checkpoint = dict(self.checkpoint)
        run.total, run.done = self.total, self.done
        self.on_progress(Progress(self.run_id, data_set, self.done, self.total, dict(self.counts)))

    def _check_cancel(self) -> None:
        """Between pages: stop here if the run was cancelled, or the job runner is
        stopping (everything before this point is committed)."""
        if self.should_stop():
            raise JobInterrupted
        with self.db.read() as session:
            wanted = session.scalar(
                select(SyncRun.cancel_requested).where(SyncRun.id == self.run_id)
            )
        if wanted:
            raise _Cancelled

    def _finish(self, status: str, error: str | None) -> SyncRun:
        with self.db.transaction() as session:
            run = session.get(SyncRun, self.run_id)
            assert run is not None
            run.status = status
            run.error = error
            run.counts = dict(self.counts)
            run.checkpoint = dict(self.checkpoint)
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

    def _since(self, moment: datetime | None) -> datetime | None:
        return None if moment is None else moment - self.overlap

    # -- data sets ---------------------------------------------------------------------

    async def _data_set(self, data_set: DataSet) -> None:
        moved_to = utcnow()
        with self.db.read() as session:
            cursor = session.get(SyncCursor, (self.connection_id, data_set.value))
            registry_since = self._since(cursor.registry_until if cursor else None)
            ledger_since = self._since(cursor.ledger_until if cursor else None)
        if data_set is DataSet.MEMBER_DETAILS and self.remap and self.source_run_id is None:
            await self._member_details(None, None)  # every linked member
        elif data_set is DataSet.MEMBER_DETAILS:
            await self._member_details(registry_since, ledger_since)
        elif data_set is DataSet.CARD_PROFILES:
            await self._card_profiles()
        elif data_set is DataSet.BALANCES:
            counts = await ledger_view.refresh_balances(self.db, self.ledger, self.connection_id)
            for key, value in counts.as_dict().items():
                self._count(f"balances_{key}", value)
        else:
            counts = await ledger_view.refresh_transactions(
                self.db, self.ledger, self.connection_id, ledger_since, self.periods
            )
            for key, value in counts.as_dict().items():
                self._count(f"transactions_{key}", value)
        with self.db.transaction() as session:
            if not self.dry_run:
                cursor = self._cursor(session, data_set)
                cursor.registry_until = moved_to
                cursor.ledger_until = moved_to
            self.checkpoint[data_set.value] = "done"
            self._save(session, data_set.value)

    async def _card_profiles(self) -> None:
        """Ledger customers ↔ PayTrace profiles (see :mod:`ledgerlink.sync.card_profiles`)."""
        with self.db.read() as session:
            ledger_connection = _ledger_connection(session, self.connection_id)
            session.expunge(ledger_connection)
            paytrace = profiles.gateway_connection(session, self.connection_id)
        if paytrace is None or self.open_gateway is None:
            self._count("card_profiles_skipped")
            self._record_problem(
                profiles.DATA_SET,
                "No PayTrace connection posts payments to this ledger",
                "Set Post payments to on the PayTrace connection, then sync again",
            )
            return
        with self.db.transaction() as session:
            mapping = self._specs(
                lambda: profiles.ProfileMapping.load(session, self.mappings, ledger_connection.kind)
            )
            self._record_versions(session, mapping.versions)
        gateway = self.open_gateway(paytrace)
        try:
            found = await profiles.pairs(self.db, self.ledger, gateway, ledger_connection)
            self.total += len(found)
            with self.db.read() as session:
                agreed = profiles.baselines(session, self.connection_id)
            records: list[dict[str, Any]] = []
            settled: list[tuple[profiles.Pair, dict[str, str]]] = []
            try:
                for pair in found:
                    self._check_cancel()
                    outcome = profiles.evaluate(pair, agreed.get(pair.key), self.policies, mapping)
                    self.done += 1
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
                    records.append(record)  # once its writes are over, however they went
                    if ok:
                        settled.append((pair, outcome.result))
                        self._count("profiles_updated")
                    else:
                        record["status"], record["message"] = "failed", message
                        record["fix"] = "check the value in PayTrace and the ledger, then retry"
                        self._count("failed")
            finally:
                # what was written is recorded, also when the run stops between pairs
                with self.db.transaction() as session:
                    for pair, values in settled:
                        profiles.store_baseline(session, self.connection_id, pair, values)
                    if records:
                        session.execute(insert(SyncRecord), records)
        finally:
            await gateway.aclose()

    def _profile_record(self, pair: profiles.Pair, outcome: Any) -> dict[str, Any]:
        to = {"paytrace" if outcome.to_registry else "", "ledger" if outcome.to_ledger else ""}
        to.discard("")
        if outcome.conflicts:
            self._count("conflicts")
        return {
            "run_id": self.run_id,
            "data_set": profiles.DATA_SET,
            "record_key": pair.key,
            "member_id": None,
            "direction": "both" if len(to) == 2 else f"to_{to.pop()}",
            "action": "conflict" if outcome.conflicts else "update",
            "status": "planned" if self.dry_run else "done",
            "changes": profiles.changes(outcome),
            "message": f"PayTrace profile {pair.key} ↔ {pair.customer.number} {pair.customer.name}",
            "fix": "",
            "created_at": utcnow(),
        }

    def _record_problem(self, data_set: str, message: str, fix: str) -> None:
        with self.db.transaction() as session:
            session.add(
                SyncRecord(
                    run_id=self.run_id,
                    data_set=data_set,
                    record_key="-",
                    member_id=None,
                    direction="none",
                    action="skip",
                    status="failed",
                    changes={},
                    message=message,
                    fix=fix,
                )
            )

    async def _selection(
        self, registry_since: datetime | None, ledger_since: datetime | None
    ) -> tuple[list[int], dict[str, Any]]:
        """Member ids to look at, and the customers the incremental read already gave."""
        if self.source_run_id is not None:
            with self.db.read() as session:
                wanted = "failed" if self.trigger == "retry" else "planned"
                found = session.scalars(
                    select(SyncRecord.member_id).where(
                        SyncRecord.run_id == self.source_run_id,
                        SyncRecord.status == wanted,
                        SyncRecord.data_set == DataSet.MEMBER_DETAILS.value,
                    )
                )
                ids = sorted({int(i) for i in found if i is not None})
            return ids, {}
        with self.db.read() as session:
            by_customer = details.customer_links(session, self.connection_id)
            changed = details.registry_changed(session, self.connection_id, registry_since)
        known: dict[str, Any] = {}
        async for customer in self.ledger.customers(changed_since=ledger_since):
            member_id = by_customer.get(customer.id)
            if member_id is not None:
                known[customer.id] = None if customer.deleted else customer
                changed.add(member_id)
        return sorted(changed), known

    async def _member_details(
        self, registry_since: datetime | None, ledger_since: datetime | None
    ) -> None:
        key = DataSet.MEMBER_DETAILS.value
        self.mapping = self._load_mapping()
        member_ids, known = await self._selection(registry_since, ledger_since)
        after = int(self.checkpoint.get(key) or 0) if self.checkpoint.get(key) != "done" else 0
        pending = [m for m in member_ids if m > after]
        self.resuming = bool(after)
        if not after:
            self.total += len(member_ids)
        if (
            self.source_run_id is not None
            and self.trigger == "plan"
            and await self._plan_moved(pending)
        ):
            return
        if len(pending) - len(known) > details.FULL_READ_THRESHOLD:
            with self.db.read() as session:
                by_customer = details.customer_links(session, self.connection_id)
            wanted = set(pending)
            unread = {c for c, m in by_customer.items() if m in wanted} - set(known)
            if len(unread) > details.FULL_READ_THRESHOLD:  # one paged read beats many single ones
                async for customer in self.ledger.customers():
                    known.setdefault(customer.id, customer)
        # The customers read above live until the data set ends: keep the garbage collector
        # from walking them again and again (a full collection over 100,000 customers costs
        # more than the page it interrupts).
        gc.freeze()
        try:
            for offset in range(0, len(pending), self.page_size):
                self._check_cancel()
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
        with self.db.read() as session:
            planned = {
                r.member_id: r.changes.get("_hashes", {})
                for r in session.scalars(
                    select(SyncRecord).where(
                        SyncRecord.run_id == self.source_run_id, SyncRecord.status == "planned"
                    )
                )
            }
            links = details.linked_members(session, self.connection_id, member_ids)
        customers = await details.read_customers(
            self.ledger, {m.customer_id for m in links.values()}, {}
        )
        for member_id, hashes in planned.items():
            linked = links.get(member_id or 0)
            customer = customers.get(linked.customer_id) if linked else None
            registry_now = values_hash(registry_values(linked.member)) if linked else ""
            ledger_now = details.raw_hash(customer) if customer is not None else ""
            if hashes.get("registry") != registry_now or hashes.get("ledger") != ledger_now:
                with self.db.transaction() as session:
                    stale = session.get(SyncRun, self.source_run_id)
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
                    self.checkpoint[DataSet.MEMBER_DETAILS.value] = "done"
                self._count("stale_plan")
                return True
        return False

    async def _page(self, member_ids: list[int], known: dict[str, Any]) -> None:
        with self.db.read() as session:
            links = details.linked_members(session, self.connection_id, member_ids)
            base = details.baselines(session, self.connection_id, member_ids)
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
        if not self.dry_run:
            changed = [p for p in plans if not p.unchanged]
            written = await details.write_ledger(self.ledger, changed, self.mapping)
        page = _Page()
        with self.db.transaction() as session:
            for plan in plans:
                self._settle(session, plan, written, page)
            details.store_baselines(session, page.baselines)
            if page.records:
                session.execute(insert(SyncRecord), page.records)
            self.done += len(member_ids)
            self.checkpoint[DataSet.MEMBER_DETAILS.value] = max(member_ids)
            self._save(session, DataSet.MEMBER_DETAILS.value)
        self.mapping.forget()

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
                {
                    "run_id": self.run_id,
                    "data_set": DataSet.MEMBER_DETAILS.value,
                    "record_key": plan.linked.number,
                    "member_id": plan.linked.member_id,
                    "direction": f"to_{side}",
                    "action": "update",
                    "status": "done",
                    "changes": earlier,
                    "message": "written before the run was interrupted; both sides agree",
                    "fix": "",
                    "created_at": utcnow(),
                }
            )
            self._count("updated")
            return
        record: dict[str, Any] = {
            "run_id": self.run_id,
            "data_set": DataSet.MEMBER_DETAILS.value,
            "record_key": plan.linked.number,
            "member_id": plan.linked.member_id,
            "direction": details.direction_of(plan),
            "action": "delete"
            if plan.deleted
            else ("conflict" if plan.merge and plan.merge.conflicts else "update"),
            "status": "planned" if self.dry_run else "done",
            "changes": {
                **details.changes_of(plan),
                "_hashes": {"registry": plan.registry_hash, "ledger": plan.ledger_hash},
            },
            "message": "",
            "fix": "",
            "created_at": utcnow(),
        }
        page.records.append(record)
        if plan.merge is not None and plan.merge.conflicts:
            self._count("conflicts")
        if self.dry_run:
            record["message"] = _summary(plan)
            self._count("deleted" if plan.deleted else "to_update")
            return
        if plan.deleted:
            details.unlink_deleted(session, self.principal, self.connection_id, plan)
            record["message"] = "the customer was deleted in the ledger; the member was unlinked"
            record["fix"] = "link the member to another customer, or create a new account"
            self._count("deleted")
            return
        assert plan.merge is not None
        write = written.get(plan.linked.member_id, details.LedgerWrite(True))
        if not write.ok:
            record["status"], record["message"], record["fix"] = "failed", write.message, write.fix
            self._count("failed")
            return
        if plan.merge.to_registry:
            with session.begin_nested():
                stored, problem, fix = details.write_registry(session, self.principal, plan)
            if not stored:
                record["status"], record["message"], record["fix"] = "failed", problem, fix
                self._count("failed")
                return
        page.baselines.append(
            details.baseline_row(
                self.connection_id, plan, plan.merge.result, write.customer, self.mapping
            )
        )
        record["message"] = _summary(plan)
        self._count("updated")


@dataclass
class _Page:
    """What one page writes to the database, in bulk, in its closing transaction."""

    baselines: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


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
            "conflict: " + ", ".join(f"{c.field} ({c.winner} wins)" for c in plan.merge.conflicts)
        )
    return "; ".join(parts)


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


@tasks.task(TASK, retry=RetryPolicy(max_attempts=5, base_delay=10.0, max_delay=300.0))
def sync_task(ctx: JobContext, *, run_id: int, actor: str) -> None:
    """The job: open the connection's ledger and execute the run (resuming if interrupted)."""
    from ledgerlink.connectors.factory import gateway_for, ledger_for
    from ledgerlink.runtime import Runtime
    from ledgerlink.store.mapping_repo import mapping_repository

    runtime = Runtime.for_job(ctx)
    with ctx.db.read() as session:
        run = session.get(SyncRun, run_id)
        if run is None:
            return
        connection = session.get(Connection, run.connection_id)
    if connection is None:
        return

    async def work() -> None:
        ledger = ledger_for(runtime, connection)
        try:
            await execute(
                ctx.db,
                run_id,
                ledger,
                job_principal(actor),
                page_size=ctx.settings.sync_page_size,
                open_gateway=lambda connection: gateway_for(runtime, connection),
                mappings=mapping_repository(ctx.settings),
                should_stop=ctx.stopping.is_set,
            )
        finally:
            await ledger.aclose()

    asyncio.run(work())


__all__ = ["TASK", "Execution", "Progress", "SyncError", "execute", "request_cancel", "start"]
