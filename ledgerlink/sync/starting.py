"""Sync runs, before they execute: settings, starting a run (or applying a plan, or
retrying failures) with its job in one transaction, and cancelling."""

from __future__ import annotations

from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.connectors import registry
from ledgerlink.identity.principal import Principal
from ledgerlink.jobs.port import JobQueue
from ledgerlink.store import audit
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import SyncRecord, SyncRun, SyncSettings
from ledgerlink.store.types import utcnow
from ledgerlink.sync import tally
from ledgerlink.sync.datasets import FIELDS, DataSet, Policy
from ledgerlink.sync.plan import Checkpoint

TASK: Final = "sync.run"
ACTIVE: Final = ("queued", "running")
#: Data sets whose failed records a retry runs again (the others log no records: a
#: failure there fails the run, and its job tries again).
RETRIED: Final = (DataSet.MEMBER_DETAILS, DataSet.CARD_PROFILES)


class SyncError(Exception):
    """A run cannot start or continue; the message says why and what to do."""


class SyncRunNotFound(SyncError):
    pass


class SettingsInvalid(SyncError):
    """Sync settings that cannot be saved; ``field`` is the form field to fix
    (``data_sets``, ``policy_<field>`` or ``overlap_seconds``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


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
    ledger_connection(session, connection_id)
    known_sets = {d.value for d in DataSet}
    if not data_sets or any(d not in known_sets for d in data_sets):
        raise SettingsInvalid(
            "data_sets", f"data sets: choose one or more of {', '.join(sorted(known_sets))}"
        )
    known_policies = {p.value for p in Policy}
    for name, value in policies.items():
        if name not in FIELDS:
            raise SettingsInvalid(
                f"policy_{name}",
                f"policy for {name!r}: that is not a synced field; use one of {', '.join(FIELDS)}",
            )
        if value not in known_policies:
            allowed = ", ".join(sorted(known_policies))
            raise SettingsInvalid(
                f"policy_{name}", f"policy for {name!r}: {value!r} is not a policy; use {allowed}"
            )
    if not 0 <= overlap_seconds <= 86_400:
        raise SettingsInvalid(
            "overlap_seconds", "overlap: give 0 to 86400 seconds (300 is a safe default)"
        )
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


def ledger_connection(session: Session, connection_id: int) -> Connection:
    connection = session.get(Connection, connection_id)
    if connection is None or connection.kind not in registry.ledger_kinds():
        ledgers = " or ".join(registry.label(k) for k in registry.ledger_kinds())
        raise SyncError(f"connection {connection_id} is not a {ledgers} connection")
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
    connection = ledger_connection(session, connection_id)
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
    data_set_names = [DataSet(d).value for d in chosen]
    # the progress bar has a total from the start: an estimate from what is stored here
    expected = tally.estimate(
        session,
        connection_id,
        data_set_names,
        source_run_id=source_run_id,
        trigger=trigger,
        remap=remap,
        overlap_seconds=settings_for(session, connection_id).overlap_seconds,
    )
    run = SyncRun(
        connection_id=connection_id,
        trigger=trigger,
        data_sets=data_set_names,
        dry_run=dry_run,
        remap=remap,
        status="queued",
        counts={},
        checkpoint=Checkpoint(progress=expected.as_json()).as_json(),
        total=expected.total,
        done=0,
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
    """Apply a plan (``trigger`` "plan") or run a run's failed records again ("retry"):
    a retry covers each data set that has failed records (member details: the members
    that failed; card profiles: the profiles that failed, or all of them when the data
    set could not run at all)."""
    source = session.get(SyncRun, run_id)
    if source is None:
        raise SyncRunNotFound(f"there is no sync run {run_id}")
    if trigger == "plan" and source.status != "planned":
        raise SyncError(f"run {run_id} is {source.status}, not a plan to apply; make a new plan")
    data_sets = [DataSet.MEMBER_DETAILS.value]
    if trigger == "retry":
        if source.status in ACTIVE:
            raise SyncError(
                f"run {run_id} is still {source.status}; retry its failed records once it ends"
            )
        if source.dry_run:
            raise SyncError(f"run {run_id} is a plan: nothing was written, so nothing to retry")
        failed = set(
            session.scalars(
                select(SyncRecord.data_set)
                .where(SyncRecord.run_id == run_id, SyncRecord.status == "failed")
                .distinct()
            )
        )
        data_sets = [d.value for d in DataSet if d.value in failed and d in RETRIED]
        if not data_sets:
            raise SyncError(f"run {run_id} has no failed records to retry")
    return start(
        session,
        jobs,
        principal,
        source.connection_id,
        data_sets,
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


def give_up(session: Session, run_id: int, error: str) -> SyncRun | None:
    """The run's job failed for good (out of attempts, or its worker kept dying): a run
    still queued or running ends failed and says why, instead of showing "running" for
    ever. None when the run is gone or had already ended."""
    run = session.get(SyncRun, run_id)
    if run is None or run.status not in ACTIVE:
        return None
    run.status = "failed"
    run.error = (
        f"the job running this sync was given up: {error}. Start the sync again: it "
        "picks up from what the ledger and the registry now agree on, so no member is "
        "written twice."
    )
    run.finished_at = utcnow()
    audit.record(
        session,
        actor="system",
        action="sync.failed",
        entity_type="sync_run",
        entity_id=run_id,
        after={"counts": run.counts, "error": run.error},
    )
    return run
