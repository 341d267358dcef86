"""Scheduled syncs: daily or weekly at a time, or a cron expression, in a time zone.

A periodic job looks every minute for schedules whose ``next_run_at`` has passed and
starts their run. A schedule missed while the service was down is behind by one or more
occurrences when it comes back: it runs once, and ``next_run_at`` moves to the next
occurrence after now (no burst of catch-up runs). A schedule whose previous run of the
same data sets is still going is skipped for that occurrence, so runs never overlap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal, system_principal
from ledgerlink.jobs.port import JobQueue, job_queue
from ledgerlink.jobs.registry import JobContext, tasks
from ledgerlink.store import audit
from ledgerlink.store.sync_models import SyncSchedule
from ledgerlink.store.types import utcnow
from ledgerlink.sync import runs
from ledgerlink.sync.datasets import DataSet

TASK: Final = "sync.schedules"
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class ScheduleInvalid(runs.SyncError):
    """A schedule the form describes cannot be kept; ``field`` is the form field to fix
    (``kind``, ``at``, ``weekday``, ``cron``, ``timezone`` or ``data_sets``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def cron_for(kind: str, at: str = "", weekday: str = "", cron: str = "") -> str:
    """The cron expression of a schedule as the form describes it (errors say what to fix)."""
    if kind not in ("daily", "weekly", "cron"):
        raise ScheduleInvalid("kind", f"schedule kind {kind!r}: use daily, weekly or cron")
    if kind == "cron":
        if not croniter.is_valid(cron.strip()):
            raise ScheduleInvalid(
                "cron",
                f"{cron!r} is not a cron expression: give minute hour day-of-month month "
                "day-of-week, e.g. '30 2 * * 1-5' for 02:30 on weekdays",
            )
        return cron.strip()
    hour, _, minute = at.partition(":")
    if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
        raise ScheduleInvalid("at", f"time {at!r}: write it as HH:MM, e.g. 02:30")
    if kind == "daily":
        return f"{int(minute)} {int(hour)} * * *"
    if weekday.lower() not in WEEKDAYS:
        raise ScheduleInvalid("weekday", f"weekday {weekday!r}: use one of {', '.join(WEEKDAYS)}")
    return f"{int(minute)} {int(hour)} * * {(WEEKDAYS.index(weekday.lower()) + 1) % 7}"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInvalid(
            "timezone", f"time zone {name!r} is unknown; use an IANA name such as Europe/London"
        ) from None


def next_after(cron: str, timezone: str, moment: datetime) -> datetime:
    """The first occurrence strictly after ``moment``, computed in the schedule's zone (so
    "02:30 daily" stays 02:30 local across daylight-saving changes), returned in UTC."""
    local = moment.astimezone(zone(timezone))
    following: datetime = croniter(cron, local).get_next(datetime)
    return following.astimezone(UTC)


def add(
    session: Session,
    principal: Principal,
    connection_id: int,
    *,
    kind: str,
    at: str = "",
    weekday: str = "",
    cron: str = "",
    timezone: str = "UTC",
    data_sets: list[str] | None = None,
    now: datetime | None = None,
) -> SyncSchedule:
    runs.ledger_connection(session, connection_id)
    expression = cron_for(kind, at, weekday, cron)
    zone(timezone)
    settings = runs.settings_for(session, connection_id)
    chosen = data_sets or list(settings.data_sets)
    known = {d.value for d in DataSet}
    for name in chosen:
        if name not in known:
            raise ScheduleInvalid(
                "data_sets", f"data set {name!r}: choose from {', '.join(sorted(known))}"
            )
    schedule = SyncSchedule(
        connection_id=connection_id,
        data_sets=chosen,
        kind=kind,
        cron=expression,
        timezone=timezone,
        enabled=True,
        next_run_at=next_after(expression, timezone, now or utcnow()),
        created_by=principal.actor,
    )
    session.add(schedule)
    session.flush()
    audit.record(
        session,
        actor=principal.actor,
        action="sync.schedule_added",
        entity_type="sync_schedule",
        entity_id=schedule.id,
        after={
            "cron": expression,
            "timezone": timezone,
            "data_sets": chosen,
            "connection_id": connection_id,
        },
    )
    return schedule


def remove(session: Session, principal: Principal, schedule_id: int) -> None:
    schedule = session.get(SyncSchedule, schedule_id)
    if schedule is None:
        raise runs.SyncError(f"there is no schedule {schedule_id}")
    session.delete(schedule)
    audit.record(
        session,
        actor=principal.actor,
        action="sync.schedule_removed",
        entity_type="sync_schedule",
        entity_id=schedule_id,
        before={"cron": schedule.cron, "timezone": schedule.timezone},
    )


def fire_due(
    session: Session, jobs: JobQueue | None, principal: Principal, now: datetime | None = None
) -> list[int]:
    """Start the runs of every schedule that is due; the ids of the runs started."""
    now = now or utcnow()
    started: list[int] = []
    due = session.scalars(
        select(SyncSchedule)
        .where(SyncSchedule.enabled.is_(True), SyncSchedule.next_run_at <= now)
        .with_for_update(skip_locked=True)
    ).all()
    for schedule in due:
        schedule.last_fired_at = now
        schedule.next_run_at = next_after(schedule.cron, schedule.timezone, now)
        try:
            with session.begin_nested():
                run = runs.start(
                    session,
                    jobs,
                    principal,
                    schedule.connection_id,
                    list(schedule.data_sets),
                    trigger="schedule",
                )
            schedule.last_run_id = run.id
            schedule.last_outcome = f"started run {run.id}"
            started.append(run.id)
        except runs.SyncError as exc:
            schedule.last_outcome = f"skipped: {exc}"
    return started


@tasks.task(TASK)
def fire_schedules(ctx: JobContext) -> None:
    """Every minute: start the sync runs whose schedules are due."""
    jobs = job_queue(ctx.settings, ctx.db)
    with ctx.db.transaction() as session:
        fire_due(session, jobs, system_principal("scheduler"))


tasks.periodic("sync.schedules.minutely", "* * * * *", task=TASK)
