"""What the portal, the API and the CLI show about sync runs: progress with rate and ETA,
records, settings. Kept apart from the web layer so all three say the same thing."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypedDict

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from ledgerlink.connectors import registry
from ledgerlink.csv_cells import SafeCsvWriter
from ledgerlink.domain.money import Money
from ledgerlink.payments.views import card_reversals, disputed_invoices
from ledgerlink.store.day_buckets import parse_day, utc_day
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import (
    MemberBalance,
    MemberTransaction,
    SyncRecord,
    SyncRun,
    SyncSchedule,
)
from ledgerlink.sync.datasets import FIELD_LABELS, FIELDS, DataSet, Policy
from ledgerlink.sync.ledger_view import payment_key
from ledgerlink.sync.runs import ACTIVE, settings_for

RECORD_COLUMNS = (
    "run",
    "member",
    "data_set",
    "direction",
    "action",
    "status",
    "fields",
    "message",
    "fix",
)


class RunProgress(TypedDict):
    """A run's progress bar: done/total, percent, records per second and seconds left."""

    id: int
    status: str
    done: int
    total: int
    percent: int
    rate: float
    eta_seconds: int | None
    errors: int
    counts: dict[str, int]
    finished: bool
    error: str | None
    #: the status in words that agree with the records ("finished with 3 failed records")
    outcome: str
    #: how to show it: "ok", "warn", "bad" or "" (neutral)
    tone: str


class RunSummary(TypedDict):
    """A run as the sync log lists it."""

    id: int
    connection: str
    connection_id: int
    trigger: str
    data_sets: list[str]
    dry_run: bool
    status: str
    counts: dict[str, int]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    requested_by: str
    source_run_id: int | None
    error: str | None
    mapping_versions: dict[str, str]
    remap: bool
    #: failed records the run logged (what Retry failed records runs again)
    failed_records: int
    outcome: str
    tone: str


class RunState(RunSummary):
    """A run with its progress, as the API follows it."""

    progress: RunProgress


class GoneRun(TypedDict):
    """The progress of a run that no longer exists: finished."""

    finished: bool
    status: str


class ConflictView(TypedDict):
    """Both sides changed a field since the last sync; ``winner`` is the policy's pick."""

    registry: str
    ledger: str
    winner: str


class FieldChangeView(TypedDict):
    """One field a record changed (or would change), with the side it was written to.
    ``conflict``: both sides changed it since they last agreed; ``first_sync``: the sides
    differed the first time they were synced (no agreement yet, so no conflict)."""

    field: str
    before: str
    after: str
    side: str
    conflict: ConflictView | None
    first_sync: ConflictView | None


class RecordView(TypedDict):
    id: int
    #: the member number, or for other data sets the record's own key (a PayTrace
    #: customer id, a ledger document)
    member: str
    #: the member's page, when the record is a member's (None: show ``member`` as text)
    member_url: str | None
    data_set: str
    direction: str
    action: str
    status: str
    fields: list[FieldChangeView]
    message: str | None
    fix: str | None


class ScheduleView(TypedDict):
    id: int
    connection_id: int
    when: str
    timezone: str
    data_sets: list[str]
    enabled: bool
    next_run_at: datetime | None
    last_outcome: str | None
    last_run_id: int | None


class ConnectionSyncSettings(TypedDict):
    """A ledger connection's sync settings, every field's policy filled in."""

    id: int
    name: str
    kind: str
    data_sets: list[str]
    policies: dict[str, str]
    overlap_seconds: int


class BalanceView(TypedDict):
    connection: str
    balance: str
    outstanding: str
    open_invoices: int
    refreshed_at: datetime


class TransactionView(TypedDict):
    connection: str
    kind: str
    number: str
    date: date
    total: str
    outstanding: str
    status: str


class MemberLedgerView(TypedDict):
    balances: list[BalanceView]
    history: list[TransactionView]


def failed_records(session: Session, run_id: int) -> int:
    """How many records of the run failed: what its status and counts must agree with."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(SyncRecord)
            .where(SyncRecord.run_id == run_id, SyncRecord.status == "failed")
        )
        or 0
    )


def _failed_by_run(session: Session, run_ids: list[int]) -> dict[int, int]:
    if not run_ids:
        return {}
    rows = session.execute(
        select(SyncRecord.run_id, func.count())
        .where(SyncRecord.run_id.in_(run_ids), SyncRecord.status == "failed")
        .group_by(SyncRecord.run_id)
    )
    return {int(run_id): int(n) for run_id, n in rows}


def outcome(status: str, failed: int) -> tuple[str, str]:
    """(words, tone) for a run: a run that ended with failed records did not simply
    "finish" — it says how many failed, in a warning style, so nobody reads it as clean."""
    if status in ACTIVE:
        return status, ""
    if status == "failed":
        return "failed", "bad"
    if failed and status in ("finished", "planned", "applied"):
        noun = "record" if failed == 1 else "records"
        return f"{status} with {failed} failed {noun}", "warn"
    return status, "ok" if status in ("finished", "planned", "applied") else ""


def progress(run: SyncRun, failed: int | None = None) -> RunProgress:
    """Done/total, percent, records per second and time left, as the progress bar shows.
    ``failed``: the run's failed records (read from them, see :func:`failed_records`);
    None takes the run's own count."""
    started = run.started_at
    now = run.finished_at or datetime.now(UTC)
    elapsed = (now - started).total_seconds() if started else 0.0
    rate = run.done / elapsed if elapsed > 0 else 0.0
    remaining = max(run.total - run.done, 0)
    eta = remaining / rate if rate > 0 and run.status in ACTIVE else None
    if run.status in ("finished", "planned"):
        percent = 100
    elif run.total:
        # a running run is never shown as complete: its total may still be an estimate
        percent = min(int(run.done * 100 / run.total), 99 if run.status in ACTIVE else 100)
    else:
        percent = 0
    errors = int(run.counts.get("failed", 0)) if failed is None else failed
    words, tone = outcome(run.status, errors)
    return {
        "id": run.id,
        "status": run.status,
        "done": run.done,
        "total": run.total,
        "percent": percent,
        "rate": round(rate, 1),
        "eta_seconds": None if eta is None else round(eta),
        "errors": errors,
        "counts": dict(run.counts),
        "finished": run.status not in ACTIVE,
        "error": run.error,
        "outcome": words,
        "tone": tone,
    }


def run_summary(run: SyncRun, connection_name: str, failed: int | None = None) -> RunSummary:
    """``failed``: the run's failed records (None takes the run's own count)."""
    errors = int(run.counts.get("failed", 0)) if failed is None else failed
    words, tone = outcome(run.status, errors)
    duration = None
    if run.started_at and run.finished_at:
        duration = round((run.finished_at - run.started_at).total_seconds(), 1)
    return {
        "id": run.id,
        "connection": connection_name,
        "connection_id": run.connection_id,
        "trigger": run.trigger,
        "data_sets": [DataSet(d).label for d in run.data_sets],
        "dry_run": run.dry_run,
        "status": run.status,
        "counts": dict(run.counts),
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": duration,
        "requested_by": run.requested_by,
        "source_run_id": run.source_run_id,
        "error": run.error,
        "mapping_versions": dict(run.mapping_versions or {}),
        "remap": run.remap,
        "failed_records": errors,
        "outcome": words,
        "tone": tone,
    }


def recent_runs(session: Session, limit: int = 30, status: str | None = None) -> list[RunSummary]:
    names = dict(session.execute(select(Connection.id, Connection.name)).tuples().all())
    query = select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)
    if status:
        query = query.where(SyncRun.status == status)
    found = list(session.scalars(query))
    failed = _failed_by_run(session, [run.id for run in found])
    return [
        run_summary(run, names.get(run.connection_id, "?"), failed.get(run.id, 0)) for run in found
    ]


def records(
    session: Session, run_id: int, status: str | None = None, limit: int | None = 500
) -> list[RecordView]:
    query = select(SyncRecord).where(SyncRecord.run_id == run_id).order_by(SyncRecord.id)
    if status:
        query = query.where(SyncRecord.status == status)
    if limit:
        query = query.limit(limit)
    return [record_view(r) for r in session.scalars(query)]


def _settled(changes: dict[str, Any], key: str) -> dict[str, ConflictView]:
    """A card-profile record's conflicts or first-sync differences (``_conflicts``,
    ``_first_sync``) by field, in the member-details shape (PayTrace is the "registry"
    side there)."""
    found: dict[str, ConflictView] = {}
    for item in changes.get(key) or []:
        found[str(item.get("field", ""))] = {
            "registry": str(item.get("paytrace", "")),
            "ledger": str(item.get("ledger", "")),
            "winner": str(item.get("winner", "")),
        }
    return found


def record_view(record: SyncRecord) -> RecordView:
    fields: list[FieldChangeView] = []
    conflicts = _settled(record.changes, "_conflicts")
    first_sync = _settled(record.changes, "_first_sync")
    for name, change in record.changes.items():
        if name.startswith("_"):
            continue
        fields.append(
            {
                "field": FIELD_LABELS.get(name, name),
                "before": change.get("before", ""),
                "after": change.get("after", ""),
                "side": change.get("side", change.get("to", "")),
                "conflict": change.get("conflict") or conflicts.get(name),
                "first_sync": change.get("first_sync") or first_sync.get(name),
            }
        )
    return {
        "id": record.id,
        "member": record.record_key,
        "member_url": (
            f"/members/{record.record_key}"
            if record.data_set == DataSet.MEMBER_DETAILS.value and record.member_id is not None
            else None
        ),
        "data_set": record.data_set,
        "direction": record.direction,
        "action": record.action,
        "status": record.status,
        "fields": fields,
        "message": record.message,
        "fix": record.fix,
    }


def records_csv(session: Session, run_id: int, status: str | None = None) -> Iterator[str]:
    buffer = io.StringIO()
    writer = SafeCsvWriter(buffer)  # no cell can start a spreadsheet formula
    writer.writerow(RECORD_COLUMNS)
    yield buffer.getvalue()
    for view in records(session, run_id, status, limit=None):
        buffer.seek(0)
        buffer.truncate()
        changes = "; ".join(f"{f['field']}: {f['before']} -> {f['after']}" for f in view["fields"])
        writer.writerow(
            [
                run_id,
                view["member"],
                view["data_set"],
                view["direction"],
                view["action"],
                view["status"],
                changes,
                view["message"],
                view["fix"],
            ]
        )
        yield buffer.getvalue()


def schedule_view(schedule: SyncSchedule) -> ScheduleView:
    when = {
        "daily": "every day",
        "weekly": "every week",
        "cron": "cron",
    }[schedule.kind]
    return {
        "id": schedule.id,
        "connection_id": schedule.connection_id,
        "when": f"{when}: {schedule.cron}",
        "timezone": schedule.timezone,
        "data_sets": [DataSet(d).label for d in schedule.data_sets],
        "enabled": schedule.enabled,
        "next_run_at": schedule.next_run_at,
        "last_outcome": schedule.last_outcome,
        "last_run_id": schedule.last_run_id,
    }


def schedules_of(session: Session) -> dict[int, list[ScheduleView]]:
    by_connection: dict[int, list[ScheduleView]] = {}
    for schedule in session.scalars(select(SyncSchedule).order_by(SyncSchedule.id)):
        by_connection.setdefault(schedule.connection_id, []).append(schedule_view(schedule))
    return by_connection


def connection_settings(session: Session) -> list[ConnectionSyncSettings]:
    """Every ledger connection with its sync settings (defaults made on first view)."""
    out: list[ConnectionSyncSettings] = []
    for connection in session.scalars(
        select(Connection)
        .where(Connection.kind.in_(registry.ledger_kinds()))
        .order_by(Connection.name)
    ):
        settings = settings_for(session, connection.id)
        out.append(
            {
                "id": connection.id,
                "name": connection.name,
                "kind": connection.kind,
                "data_sets": list(settings.data_sets),
                "policies": {
                    f: settings.field_policies.get(f, Policy.REGISTRY_WINS.value) for f in FIELDS
                },
                "overlap_seconds": settings.overlap_seconds,
            }
        )
    return out


def member_ledger_view(session: Session, member_id: int) -> MemberLedgerView:
    """What the ledgers told the last sync about a member: balance per connection and the
    transaction history (newest first), amounts formatted exactly."""
    names = dict(session.execute(select(Connection.id, Connection.name)).tuples().all())
    balances: list[BalanceView] = [
        {
            "connection": names.get(b.connection_id, "?"),
            "balance": Money(b.balance_minor, b.currency).format_display(),
            "outstanding": Money(b.outstanding_minor, b.currency).format_display(),
            "open_invoices": b.open_invoices,
            "refreshed_at": b.refreshed_at,
        }
        for b in session.scalars(select(MemberBalance).where(MemberBalance.member_id == member_id))
    ]
    disputed = disputed_invoices(session)  # open chargebacks on them
    reversals = {  # the ledger calls them refunds; ledgerlink knows what it posted
        (connection_id, payment_key(ledger_id)): kind
        for (connection_id, ledger_id), kind in card_reversals(session, member_id).items()
    }
    history: list[TransactionView] = [
        {
            "connection": names.get(t.connection_id, "?"),
            "kind": reversals.get((t.connection_id, t.ledger_id), t.kind.replace("_", " ")),
            "number": t.number,
            "date": t.posted_on,
            "total": Money(t.total_minor, t.currency).format_display(),
            "outstanding": Money(t.outstanding_minor, t.currency).format_display()
            if t.kind in ("invoice", "credit_note")
            else "",
            "status": "in dispute"
            if t.kind == "invoice" and t.number in disputed
            else t.status.replace("_", " "),
        }
        for t in session.scalars(
            select(MemberTransaction)
            .where(MemberTransaction.member_id == member_id)
            .order_by(MemberTransaction.posted_on.desc(), MemberTransaction.ledger_id)
            .limit(200)
        )
    ]
    return {"balances": balances, "history": history}


@dataclass(frozen=True)
class DayRuns:
    """Sync runs started on one UTC day, and how many of them failed or ended with failed
    records (what the Sync page's chart shows)."""

    day: date
    runs: int
    with_failures: int


def runs_by_day(session: Session, now: datetime | None = None, days: int = 14) -> list[DayRuns]:
    """Sync runs per UTC day (by when they were asked for) over ``days`` days, today
    included and every day present, counted in SQL."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    day = utc_day(SyncRun.created_at).label("day")
    failed_records = (
        select(SyncRecord.id)
        .where(SyncRecord.run_id == SyncRun.id, SyncRecord.status == "failed")
        .exists()
    )
    failing = case((or_(SyncRun.status == "failed", failed_records), 1), else_=0)
    rows = session.execute(
        select(day, func.count(), func.sum(failing))
        .where(SyncRun.created_at >= datetime.combine(first, time(), UTC))
        .group_by(day)
    ).all()
    found = {parse_day(d): (int(n), int(bad or 0)) for d, n, bad in rows}
    every_day = [first + timedelta(days=i) for i in range(days)]
    return [DayRuns(d, *found.get(d, (0, 0))) for d in every_day]
