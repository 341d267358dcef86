"""The job port behaves the same on both back-ends: embedded (SQLite) and procrastinate
(PostgreSQL). Workers run in threads of the test process; see test_job_kill.py for
workers in their own processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text, update

from ledgerlink.clock import ManualClock
from ledgerlink.jobs.builtin import prune
from ledgerlink.jobs.port import JobHealth, JobQueue, job_queue
from ledgerlink.jobs.registry import MAX_STALLS, JobContext, load_task_modules, tasks
from ledgerlink.jobs.ticks import due_tick
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.models import Job
from tests.support.job_tasks import (
    TASK_MODULE,
    MaxJitter,
    create_effects_table,
    effects,
    effects_of,
    leave_as_a_killed_worker_would,
    worker_thread,
)
from tests.support.waiting import wait_until


@pytest.fixture
def job_settings(settings: Settings) -> Settings:
    settings.task_modules = [TASK_MODULE]
    settings.worker_concurrency = 2
    settings.job_lease_seconds = 2.0
    settings.worker_heartbeat_seconds = 0.5
    load_task_modules(settings)
    return settings


@pytest.fixture
def queue(job_settings: Settings, db: Database) -> JobQueue:
    create_effects_table(db)
    return job_queue(job_settings, db)


@pytest.fixture
def every_second() -> Iterator[str]:
    tasks.periodic("test.every-second", "* * * * * *", task="test.tick")
    yield "test.every-second"
    tasks.remove_periodic("test.every-second")


def enqueue(db: Database, queue: JobQueue, task: str, **kwargs: object) -> int | None:
    with db.transaction() as session:
        return queue.enqueue(session, task, **kwargs)  # type: ignore[arg-type]


def status_of(queue: JobQueue, job_id: int) -> str | None:
    info = queue.get(job_id)
    return info.status if info else None


def test_enqueued_job_exists_only_once_the_caller_commits(db: Database, queue: JobQueue) -> None:
    with db.transaction() as session:
        job_id = queue.enqueue(session, "test.record", {"label": "a"})
        assert job_id is not None
        assert queue.get(job_id) is None  # another connection cannot see it yet
    info = queue.get(job_id)
    assert info is not None
    assert (info.task, info.status, info.attempts) == ("test.record", "queued", 0)


def test_enqueued_job_disappears_when_the_caller_rolls_back(db: Database, queue: JobQueue) -> None:
    enqueued: list[int | None] = []

    def change_that_fails() -> None:
        with db.transaction() as session:
            enqueued.append(queue.enqueue(session, "test.record", {"label": "a"}))
            raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        change_that_fails()
    job_id = enqueued[0]
    assert job_id is not None
    assert queue.get(job_id) is None
    assert queue.health().queued == 0


def test_enqueueing_an_unknown_task_names_it_and_the_known_ones(
    db: Database, queue: JobQueue
) -> None:
    with pytest.raises(ValueError, match=r"'test.recrod'.*test\.record"):
        enqueue(db, queue, "test.recrod", args={"label": "a"})


def test_arguments_that_are_not_json_are_refused(db: Database, queue: JobQueue) -> None:
    with pytest.raises(ValueError, match="JSON"):
        enqueue(db, queue, "test.record", args={"label": datetime.now(UTC)})


def test_a_queued_job_runs_once_a_worker_is_running(
    job_settings: Settings, db: Database, queue: JobQueue
) -> None:
    job_id = enqueue(db, queue, "test.record", args={"label": "once"})
    assert job_id is not None
    with worker_thread(job_settings):
        wait_until(lambda: status_of(queue, job_id) == "succeeded", timeout=15, what="success")
    ran = effects_of(db, "once")
    assert [(e.job_id, e.attempt) for e in ran] == [(job_id, 1)]


def test_a_delayed_job_does_not_run_before_its_time(
    job_settings: Settings, db: Database, queue: JobQueue
) -> None:
    enqueued_at = time.time()
    job_id = enqueue(
        db, queue, "test.record", args={"label": "later"}, delay=timedelta(seconds=1.5)
    )
    assert job_id is not None
    with worker_thread(job_settings):
        time.sleep(max(0.0, enqueued_at + 1.0 - time.time()))
        assert effects_of(db, "later") == []
        ran = wait_until(lambda: effects_of(db, "later"), timeout=15, what="the delayed job")
    assert ran[0].at >= enqueued_at + 1.5


def test_a_dedup_key_gives_one_job_while_it_is_queued_or_running(
    job_settings: Settings, db: Database, queue: JobQueue
) -> None:
    args = {"label": "dedup", "seconds": 1.0}
    first = enqueue(db, queue, "test.slow", args=args, dedup_key="sync:42")
    assert first is not None
    assert enqueue(db, queue, "test.slow", args=args, dedup_key="sync:42") is None
    with worker_thread(job_settings):
        wait_until(lambda: effects_of(db, "dedup", "started"), timeout=15, what="the job")
        assert enqueue(db, queue, "test.slow", args=args, dedup_key="sync:42") is None
        wait_until(lambda: status_of(queue, first) == "succeeded", timeout=15, what="success")
    again = enqueue(db, queue, "test.slow", args=args, dedup_key="sync:42")
    assert again is not None
    assert again != first


def test_losing_a_dedup_race_keeps_the_callers_own_changes(db: Database, queue: JobQueue) -> None:
    """Two transactions enqueue the same key at once: one job, and both commit their work."""
    first_enqueued = threading.Event()
    results: dict[str, int | None] = {}
    errors: list[BaseException] = []

    def change(name: str, wait_for: threading.Event | None) -> None:
        try:
            if wait_for is not None:
                wait_for.wait(10)
            with db.transaction() as session:
                session.execute(
                    insert(effects).values(
                        label="race", event=name, job_id=0, attempt=0, at=time.time(), pid=0
                    )
                )
                results[name] = queue.enqueue(
                    session, "test.record", {"label": "raced"}, dedup_key="race"
                )
                if wait_for is None:
                    first_enqueued.set()
                    time.sleep(0.5)  # the other transaction now runs into our key
        except BaseException as exc:
            errors.append(exc)
            first_enqueued.set()

    threads = [
        threading.Thread(target=change, args=("first", None)),
        threading.Thread(target=change, args=("second", first_enqueued)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert results["first"] is not None
    assert results["second"] is None
    assert sorted(e.event for e in effects_of(db, "race")) == ["first", "second"]


def test_a_failing_job_is_retried_with_growing_backoff_until_it_succeeds(
    job_settings: Settings, db: Database, queue: JobQueue
) -> None:
    # test.flaky: base_delay 0.3 s, max_delay 1.0 s; MaxJitter takes the top of the window.
    job_id = enqueue(db, queue, "test.flaky", args={"label": "flaky", "failures": 2})
    assert job_id is not None
    with worker_thread(job_settings, rng=MaxJitter()):
        wait_until(lambda: status_of(queue, job_id) == "succeeded", timeout=20, what="success")
    starts = effects_of(db, "flaky", "started")
    assert [e.attempt for e in starts] == [1, 2, 3]
    assert starts[1].at - starts[0].at >= 0.3
    assert starts[2].at - starts[1].at >= 0.6
    assert len(effects_of(db, "flaky", "finished")) == 1
    info = queue.get(job_id)
    assert info is not None
    assert info.attempts == 3
    assert info.last_error is not None
    assert "planned failure 2 of 2" in info.last_error


@pytest.mark.parametrize("backend", ["sqlite"])  # procrastinate retries on PostgreSQL's clock
def test_the_embedded_runner_waits_out_a_retrys_backoff_on_its_clock(
    job_settings: Settings, db: Database, queue: JobQueue
) -> None:
    """The backoff is judged on the runner's clock: the test moves it, nothing sleeps."""
    job_id = enqueue(db, queue, "test.flaky", args={"label": "clocked", "failures": 2})
    assert job_id is not None
    clock = ManualClock(datetime.now(UTC))  # the job is due at once on this clock

    def failed_attempt(n: int) -> object:
        info = queue.get(job_id)
        return info if info and info.attempts == n and info.status == "queued" else None

    with worker_thread(job_settings, rng=MaxJitter(), clock=clock):
        for attempt, backoff in [(1, 0.3), (2, 0.6)]:  # base 0.3 s, doubling (MaxJitter)
            info = wait_until(
                lambda a=attempt: failed_attempt(a), timeout=15, what=f"attempt {attempt} failed"
            )
            assert (info.run_at - clock.now()).total_seconds() == pytest.approx(backoff)
            clock.advance(backoff)
        wait_until(lambda: status_of(queue, job_id) == "succeeded", timeout=15, what="success")
    assert [e.attempt for e in effects_of(db, "clocked", "started")] == [1, 2, 3]


@pytest.mark.parametrize("backend", ["sqlite"])  # procrastinate's own lease handling differs
def test_the_embedded_runner_takes_a_job_back_once_its_lease_expires_on_its_clock(
    job_settings: Settings, db: Database, queue: JobQueue
) -> None:
    """A runner that died mid-job stops renewing its lease; once the lease has expired
    on the clock, a live runner runs the job again, with the reason kept."""
    clock = ManualClock(datetime.now(UTC))
    job_id = enqueue(db, queue, "test.record", args={"label": "orphan"})
    assert job_id is not None
    with db.transaction() as session:  # as a runner killed during attempt 1 leaves it
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status="running",
                locked_by="killed-runner",
                attempts=1,
                lease_expires_at=clock.now() + timedelta(seconds=job_settings.job_lease_seconds),
            )
        )
    with worker_thread(job_settings, clock=clock):
        wait_until(lambda: queue.health().live_workers >= 1, timeout=15, what="a live runner")
        assert status_of(queue, job_id) == "running"  # its lease still holds
        clock.advance(job_settings.job_lease_seconds + 0.1)
        wait_until(lambda: status_of(queue, job_id) == "succeeded", timeout=15, what="the re-run")
    assert [e.attempt for e in effects_of(db, "orphan")] == [2]
    info = queue.get(job_id)
    assert info is not None
    assert info.last_error is not None
    assert "stopped renewing its lease" in info.last_error


def test_a_job_that_keeps_failing_ends_failed_with_its_error_kept(
    job_settings: Settings, db: Database, queue: JobQueue
) -> None:
    job_id = enqueue(db, queue, "test.always_fails", args={"label": "doomed"})
    assert job_id is not None
    with worker_thread(job_settings):
        wait_until(lambda: status_of(queue, job_id) == "failed", timeout=20, what="failure")
        time.sleep(0.3)  # a fourth attempt would show up here
    assert [e.attempt for e in effects_of(db, "doomed", "started")] == [1, 2, 3]
    info = queue.get(job_id)
    assert info is not None
    assert info.attempts == 3
    assert info.last_error is not None
    assert "the upstream said no" in info.last_error
    assert queue.health().failed_last_day == 1  # the dashboard's count of failed jobs


def test_a_periodic_schedule_fires_once_per_tick_with_two_workers(
    job_settings: Settings, db: Database, queue: JobQueue, every_second: str
) -> None:
    with worker_thread(job_settings), worker_thread(job_settings):
        wait_until(
            lambda: len(effects_of(db, "tick")) >= 3, timeout=20, what="three periodic ticks"
        )
        time.sleep(1.2)  # let any duplicate of the last ticks show up
    effects = effects_of(db, "tick")
    ticks = [e.tick for e in effects]
    assert None not in ticks
    # each tick with its job and attempt: one job run twice (attempt 2) is a stalled run
    # taken over; two jobs for one tick would be a second defer
    runs = sorted((str(e.tick), e.job_id, e.attempt) for e in effects)
    assert len(ticks) == len(set(ticks)), f"a tick ran twice (tick, job, attempt): {runs}"


def test_a_worker_back_from_downtime_runs_only_the_latest_missed_tick() -> None:
    last_done = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    back_at = datetime(2026, 3, 2, 12, 27, 40, tzinfo=UTC)
    assert due_tick("*/5 * * * *", last_done, back_at) == datetime(2026, 3, 2, 12, 25, tzinfo=UTC)
    assert due_tick("*/5 * * * *", datetime(2026, 3, 2, 12, 25, tzinfo=UTC), back_at) is None


def test_health_reports_backlog_and_live_workers(
    job_settings: Settings, db: Database, queue: JobQueue
) -> None:
    job_id = enqueue(db, queue, "test.record", args={"label": "h"})
    assert job_id is not None
    idle = queue.health()
    assert idle.ok
    assert idle.backend == job_settings.job_backend
    assert (idle.queued, idle.live_workers) == (1, 0)
    assert idle.oldest_due_seconds is not None
    assert idle.oldest_due_seconds >= 0
    with worker_thread(job_settings):
        wait_until(lambda: status_of(queue, job_id) == "succeeded", timeout=15, what="success")
        # Built-in periodic ticks (missed while no worker ran) drain too. Minutely ticks
        # keep arriving, so the empty backlog is judged on one snapshot, not two reads.
        snapshots: list[JobHealth] = []

        def drained() -> bool:
            snapshots.append(queue.health())
            return snapshots[-1].queued == 0

        wait_until(drained, timeout=15, what="an empty backlog")
        busy = snapshots[-1]
        assert busy.live_workers >= 1
        assert busy.oldest_due_seconds is None


def test_health_is_not_ok_when_the_job_store_is_missing(
    db: Database, queue: JobQueue, backend: str
) -> None:
    table = "jobs" if backend == "sqlite" else "procrastinate_jobs CASCADE"
    with db.engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {table}"))
    health = queue.health()
    assert not health.ok
    assert "unreachable" in health.detail


def test_prune_deletes_finished_jobs_and_keeps_pending_ones(
    job_settings: Settings, db: Database, queue: JobQueue
) -> None:
    done = enqueue(db, queue, "test.record", args={"label": "p"})
    assert done is not None
    with worker_thread(job_settings):
        wait_until(lambda: status_of(queue, done) == "succeeded", timeout=15, what="success")
    pending = enqueue(db, queue, "test.record", args={"label": "p"}, delay=timedelta(hours=1))
    assert pending is not None
    ctx = JobContext(job_id=0, attempt=1, settings=job_settings, db=db)

    prune(ctx)  # the default keeps two weeks
    assert queue.get(done) is not None

    time.sleep(0.3)
    prune(ctx, keep_days=0.2 / 86400)  # finished more than 0.2 s ago
    assert queue.get(done) is None
    assert status_of(queue, pending) == "queued"


def test_the_builtin_prune_schedule_is_registered() -> None:
    schedules = {s.name: s for s in tasks.schedules()}
    assert schedules["jobs.prune.daily"].task == "jobs.prune"
    with pytest.raises(ValueError, match="not a cron"):
        tasks.periodic("broken", "every day", task="jobs.prune")
    assert "broken" not in {s.name for s in tasks.schedules()}


def test_a_long_job_hands_back_when_the_runner_stops_and_resumes_uncounted(
    job_settings: Settings, db: Database, queue: JobQueue
) -> None:
    """Stopping a worker (embedded runner or procrastinate) does not wait out its grace for
    a long job: the job stops between units of work, is queued again without counting an
    attempt, and the next worker finishes it."""
    job_id = enqueue(db, queue, "test.until_stopped", args={"label": "long"})
    assert job_id is not None
    with worker_thread(job_settings):
        wait_until(lambda: effects_of(db, "long", "started"), timeout=15, what="the job")
    assert [e.event for e in effects_of(db, "long")] == ["started", "interrupted"]
    info = queue.get(job_id)
    assert info is not None
    assert info.status == "queued"
    with worker_thread(job_settings):
        wait_until(lambda: status_of(queue, job_id) == "succeeded", timeout=15, what="resume")
    finished = effects_of(db, "long", "finished")
    assert [(e.job_id, e.attempt) for e in finished] == [(job_id, 1)]  # not counted


def test_a_resumable_job_whose_worker_died_runs_again_without_spending_an_attempt(
    job_settings: Settings, db: Database, queue: JobQueue, backend: str
) -> None:
    """A long sync or bulk link keeps its checkpoint, so a worker killed under it (a
    deploy, the OOM killer) costs no attempt: the job, allowed a single attempt here,
    runs again to the end instead of failing for good."""
    job_id = enqueue(db, queue, "test.resumable", args={"label": "survivor"})
    assert job_id is not None
    leave_as_a_killed_worker_would(db, backend, job_id, "test.resumable")
    with worker_thread(job_settings):
        wait_until(lambda: status_of(queue, job_id) == "succeeded", timeout=20, what="the re-run")
    assert [(e.event, e.attempt) for e in effects_of(db, "survivor")] == [("finished", 1)]
    info = queue.get(job_id)
    assert info is not None
    assert (info.attempts, info.stalls) == (1, 1)
    assert info.last_error is not None
    assert "killed or hung" in info.last_error


def test_a_resumable_job_that_never_outlives_its_worker_fails_and_its_run_says_so(
    job_settings: Settings, db: Database, queue: JobQueue, backend: str
) -> None:
    """A job that takes its worker down every time is not sent round for ever: at the
    stall limit it fails, and its task hears of it (a sync run is marked failed)."""
    job_id = enqueue(db, queue, "test.resumable", args={"label": "doomed"})
    assert job_id is not None
    leave_as_a_killed_worker_would(
        db, backend, job_id, "test.resumable", earlier_stalls=MAX_STALLS - 1
    )
    with worker_thread(job_settings):
        wait_until(lambda: status_of(queue, job_id) == "failed", timeout=20, what="the failure")
        wait_until(lambda: effects_of(db, "doomed", "given_up"), timeout=10, what="the hook")
    assert not effects_of(db, "doomed", "finished")
    info = queue.get(job_id)
    assert info is not None
    assert info.stalls == MAX_STALLS
    assert info.last_error is not None
    assert f"fails after {MAX_STALLS}" in info.last_error
