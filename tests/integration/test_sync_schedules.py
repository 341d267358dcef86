"""Scheduled syncs: occurrences in the schedule's time zone, firing when due, once after a
downtime, never over a run still going."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ledgerlink.identity.principal import cli_principal
from ledgerlink.jobs.registry import tasks
from ledgerlink.store.db import Database
from ledgerlink.store.sync_models import SyncRun, SyncSchedule
from ledgerlink.sync import runs, schedules
from tests.support.members import add_connection

ME = cli_principal()


def test_daily_weekly_and_cron_become_cron_expressions_with_clear_refusals() -> None:
    assert schedules.cron_for("daily", "02:30") == "30 2 * * *"
    assert schedules.cron_for("weekly", "18:05", "monday") == "5 18 * * 1"
    assert schedules.cron_for("weekly", "18:05", "sunday") == "5 18 * * 0"
    assert schedules.cron_for("cron", cron="*/15 8-18 * * 1-5") == "*/15 8-18 * * 1-5"
    for kind, at, weekday, cron, hint in (
        ("daily", "25:00", "", "", "HH:MM"),
        ("weekly", "10:00", "someday", "", "monday"),
        ("cron", "", "", "every day", "not a cron expression"),
        ("hourly", "", "", "", "daily, weekly or cron"),
    ):
        with pytest.raises(runs.SyncError) as refused:
            schedules.cron_for(kind, at, weekday, cron)
        assert hint in str(refused.value)


def test_the_next_occurrence_is_local_time_in_the_schedules_zone() -> None:
    winter = schedules.next_after(
        "30 2 * * *", "Europe/London", datetime(2026, 1, 10, 12, tzinfo=UTC)
    )
    summer = schedules.next_after(
        "30 2 * * *", "Europe/London", datetime(2026, 7, 10, 12, tzinfo=UTC)
    )
    assert winter == datetime(2026, 1, 11, 2, 30, tzinfo=UTC)
    assert summer == datetime(2026, 7, 11, 1, 30, tzinfo=UTC)  # 02:30 BST
    with pytest.raises(runs.SyncError):
        schedules.zone("Mars/Olympus")


def test_a_due_schedule_starts_one_run_and_moves_to_the_next_occurrence(db: Database) -> None:
    connection_id = add_connection(db)
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    with db.transaction() as session:
        schedule = schedules.add(
            session, ME, connection_id, kind="daily", at="10:00", timezone="UTC", now=start
        )
        schedule_id = schedule.id
        assert schedule.next_run_at == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    with db.transaction() as session:
        assert schedules.fire_due(session, None, ME, now=start + timedelta(minutes=30)) == []
    # the service was down for three days: the schedule runs once when it is back
    back = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
    with db.transaction() as session:
        [run_id] = schedules.fire_due(session, None, ME, now=back)
    with db.transaction() as session:
        assert schedules.fire_due(session, None, ME, now=back + timedelta(minutes=1)) == []
    with db.read() as session:
        fired = session.get(SyncSchedule, schedule_id)
        run = session.get(SyncRun, run_id)
        assert fired is not None
        assert run is not None
        assert fired.next_run_at == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
        assert (run.trigger, run.status) == ("schedule", "queued")
        assert fired.last_outcome == f"started run {run_id}"


def test_a_schedule_does_not_start_over_a_run_still_going(db: Database) -> None:
    connection_id = add_connection(db)
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    with db.transaction() as session:
        runs.start(session, None, ME, connection_id, ["member_details"])  # still queued
        schedules.add(
            session,
            ME,
            connection_id,
            kind="cron",
            cron="*/5 * * * *",
            data_sets=["member_details", "balances"],
            now=now - timedelta(minutes=10),
        )
    with db.transaction() as session:
        assert schedules.fire_due(session, None, ME, now=now) == []
    with db.read() as session:
        schedule = session.scalars(select(SyncSchedule)).one()
        assert schedule.last_outcome.startswith("skipped:")
        assert "still queued" in schedule.last_outcome
        assert session.scalars(select(SyncRun)).all().__len__() == 1


def test_the_scheduler_checks_every_minute() -> None:
    assert any(s.task == schedules.TASK and s.cron == "* * * * *" for s in tasks.schedules())
