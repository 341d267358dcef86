"""The PostgreSQL job back-end: procrastinate, fed from the task registry.

Enqueueing runs procrastinate's own insert on the caller's psycopg connection, so the
job commits or rolls back with the caller's transaction. Workers are procrastinate
workers; two things are added around them:

* **stalled-job recovery**: procrastinate marks a job ``doing`` and leaves it there if
  its worker is SIGKILLed. Every worker looks, at start and then every half lease, for
  ``doing`` jobs of workers whose heartbeat is older than ``job_lease_seconds`` and
  puts them back in the queue (or fails them once their retry policy is spent);
* **error text**: procrastinate keeps no error message, so failures are written to
  ``job_errors`` for operators;
* **graceful hand-back**: when the worker is asked to stop, running tasks see
  ``JobContext.stopping``; a long one stops between units of work and raises
  :class:`JobInterrupted`, and the job goes back to ``todo`` with its attempt count
  unchanged (procrastinate's own retry would count it), as on the embedded runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
import structlog
from procrastinate import exceptions as procrastinate_exceptions
from procrastinate import jobs as procrastinate_jobs
from procrastinate import manager as procrastinate_manager
from procrastinate.sql import queries as procrastinate_queries
from procrastinate.worker import Worker
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ledgerlink.jobs.port import JobHealth, JobInfo, JobStatus, check_enqueue
from ledgerlink.jobs.registry import (
    PERIODIC_MARK,
    PERIODIC_TIMESTAMP,
    Jitter,
    JobContext,
    JobInterrupted,
    RetryPolicy,
    TaskSpec,
    stall_error,
    tasks,
)
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.models import JobError

log = structlog.get_logger("ledgerlink.jobs")

#: A periodic tick missed while every worker was down still runs (once) at start-up,
#: like on the embedded runner; procrastinate's default would drop it after 10 minutes.
PERIODIC_MAX_DELAY = 400 * 24 * 3600.0
#: Serialises stalled-job recovery across workers (pg_try_advisory_lock key).
RECOVERY_LOCK = 0x6C6C6B_6A6F6273  # "llk" "jobs"
SHUTDOWN_GRACE_SECONDS = 30.0
ERROR_LIMIT = 4000

_STATUS: dict[str, JobStatus] = {
    "todo": "queued",
    "doing": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "aborting": "running",
    "aborted": "failed",
}


def conninfo(database_url: str) -> str:
    """A libpq connection string from the SQLAlchemy URL (``postgresql+psycopg://``)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class ProcrastinateJobQueue:
    """The job port on procrastinate's tables."""

    backend = "procrastinate"

    def __init__(self, settings: Settings, db: Database):
        self.settings = settings
        self.db = db
        self._deferrer = _deferrer()
        hide_job_arguments_in_procrastinate_logs()

    def enqueue(
        self,
        session: Session,
        task: str,
        args: dict[str, Any] | None = None,
        *,
        run_at: datetime | None = None,
        delay: timedelta | None = None,
        dedup_key: str | None = None,
    ) -> int | None:
        request = check_enqueue(task, args, run_at, delay, dedup_key)
        if request.dedup_key is not None:
            # procrastinate's queueing lock only covers waiting jobs; ours also covers
            # running ones, as on the embedded back-end.
            running = session.execute(
                text(
                    "SELECT id FROM procrastinate_jobs WHERE queueing_lock = :key "
                    "AND status IN ('todo', 'doing') LIMIT 1"
                ),
                {"key": request.dedup_key},
            ).first()
            if running is not None:
                log.debug("job.deduplicated", task=task, existing_job_id=running[0])
                return None
        try:
            # A savepoint: a lost dedup race must not abort the caller's transaction.
            with session.begin_nested():
                connection = session.connection().connection.driver_connection
                job_id = self._deferrer.configure_task(
                    request.spec.name,
                    queue=request.spec.queue,
                    queueing_lock=request.dedup_key,
                    schedule_at=request.run_at,
                    connection=connection,
                ).defer(**request.args)
        except procrastinate_exceptions.AlreadyEnqueued:
            log.debug("job.deduplicated", task=task)
            return None
        log.debug("job.enqueued", job_id=job_id, task=task)
        return int(job_id)

    def health(self) -> JobHealth:
        try:
            with self.db.read() as session:
                row = session.execute(
                    text(
                        """
                        SELECT
                          (SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'),
                          (SELECT count(*) FROM procrastinate_workers
                            WHERE last_heartbeat >= now() - make_interval(secs => :window)),
                          (SELECT extract(epoch FROM now() - min(due))
                             FROM (SELECT coalesce(j.scheduled_at, e.at) AS due
                                     FROM procrastinate_jobs j
                                     LEFT JOIN procrastinate_events e
                                       ON e.job_id = j.id AND e.type = 'deferred'
                                    WHERE j.status = 'todo') pending
                            WHERE due <= now()),
                          (SELECT count(DISTINCT e.job_id) FROM procrastinate_events e
                             JOIN procrastinate_jobs j ON j.id = e.job_id
                            WHERE e.type = 'failed' AND j.status = 'failed'
                              AND e.at >= now() - interval '1 day')
                        """
                    ),
                    {"window": _live_window(self.settings)},
                ).one()
        except SQLAlchemyError as exc:
            return JobHealth(
                ok=False,
                backend=self.backend,
                detail=f"job store unreachable: {type(exc).__name__}",
                live_workers=0,
                queued=0,
                oldest_due_seconds=None,
            )
        queued, workers, oldest, failed = int(row[0]), int(row[1]), row[2], int(row[3])
        return JobHealth(
            ok=True,
            backend=self.backend,
            detail=f"{workers} live worker(s), {queued} queued",
            live_workers=workers,
            queued=queued,
            oldest_due_seconds=float(oldest) if oldest is not None else None,
            failed_last_day=failed,
        )

    def get(self, job_id: int) -> JobInfo | None:
        with self.db.read() as session:
            row = session.execute(
                text(
                    "SELECT j.id, j.task_name, j.status::text, j.attempts, j.scheduled_at, "
                    "e.error, e.stalls FROM procrastinate_jobs j "
                    "LEFT JOIN job_errors e ON e.job_id = j.id WHERE j.id = :id"
                ),
                {"id": job_id},
            ).first()
        if row is None:
            return None
        # procrastinate counts attempts when they end; count the one under way too,
        # as the embedded runner does.
        running = 1 if row[2] == "doing" else 0
        return JobInfo(
            id=int(row[0]),
            task=row[1],
            status=_STATUS.get(row[2], "failed"),
            attempts=int(row[3]) + running,
            run_at=row[4],
            last_error=row[5],
            stalls=int(row[6] or 0),
        )


_DEFERRER: procrastinate.App | None = None
_DEFERRER_LOCK = threading.Lock()


def _deferrer() -> procrastinate.App:
    """The app that inserts jobs on callers' connections, one per process.

    It never opens a pool: every defer runs on the connection it is given. It is not the
    worker's app because that one's connector is async and would try to drive the
    caller's sync connection through it. One per process because each procrastinate
    App re-registers (and re-prefixes) procrastinate's built-in tasks.
    """
    global _DEFERRER
    with _DEFERRER_LOCK:
        if _DEFERRER is None:
            _DEFERRER = procrastinate.App(connector=procrastinate.SyncPsycopgConnector())
        return _DEFERRER


class PolicyRetry(procrastinate.BaseRetryStrategy):
    """Our RetryPolicy for procrastinate: same attempt count, same full-jitter backoff.

    procrastinate's own RetryStrategy counts retries rather than attempts and has no
    jitter, so the two back-ends would otherwise retry differently.
    """

    def __init__(self, policy: RetryPolicy, rng: Jitter):
        self.policy = policy
        self.rng = rng

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate_jobs.Job
    ) -> procrastinate.RetryDecision | None:
        if isinstance(exception, JobInterrupted):
            # Handed back, not failed: due again at once (HandBackJobManager keeps the
            # attempt count as it was).
            return procrastinate.RetryDecision(retry_at=datetime.now(UTC))
        attempt = job.attempts + 1
        if attempt >= self.policy.max_attempts:
            return None
        delay = self.policy.delay_for(attempt, self.rng)
        return procrastinate.RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=delay))


#: Puts a job handed back by a stopping worker in the queue again, its attempts as they were.
HAND_BACK_QUERY = (
    "UPDATE procrastinate_jobs SET status = 'todo', scheduled_at = now(), worker_id = NULL "
    "WHERE id = %(job_id)s AND status = 'doing' AND NOT abort_requested RETURNING id"
)


class HandBackJobManager(procrastinate_manager.JobManager):
    """procrastinate's job manager, except for jobs a stopping worker handed back.

    procrastinate ends every attempt that raised through ``retry_job``, which counts it
    (``attempts + 1``). A job whose task raised :class:`JobInterrupted` did not fail: it
    stopped at a checkpoint because its worker is stopping, so it goes back to ``todo``
    with the count unchanged, in one statement (a job with an abort request is left to
    procrastinate).
    """

    def __init__(self, connector: procrastinate.PsycopgConnector) -> None:
        super().__init__(connector=connector)
        #: Ids of jobs whose task raised JobInterrupted and is not yet queued again.
        self.handed_back: set[int] = set()

    async def retry_job(
        self,
        job: procrastinate_jobs.Job,
        retry_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        lock: str | None = None,
    ) -> None:
        if job.id is not None and job.id in self.handed_back:
            self.handed_back.discard(job.id)
            try:
                await self.connector.execute_query_one_async(HAND_BACK_QUERY, job_id=job.id)
            except procrastinate_exceptions.NoResult:
                pass  # abort requested (or no longer ours): procrastinate decides below
            else:
                log.info("job.handed_back", job_id=job.id, task=job.task_name)
                return
        await super().retry_job(job, retry_at=retry_at, priority=priority, queue=queue, lock=lock)


def build_app(
    settings: Settings,
    db: Database,
    *,
    rng: Jitter | None = None,
    stopping: threading.Event | None = None,
) -> procrastinate.App:
    """A procrastinate app with every registered task and periodic schedule.

    ``stopping`` is what running tasks see as ``JobContext.stopping``: the worker sets it
    when it is asked to stop."""
    jitter: Jitter = rng or random.Random()  # noqa: S311 - jitter, not secrecy
    stop = stopping or threading.Event()
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=conninfo(settings.resolved_database_url),
            min_size=1,
            max_size=settings.worker_concurrency + 4,
        ),
        periodic_defaults={"max_delay": PERIODIC_MAX_DELAY},
    )
    connector = app.connector
    assert isinstance(connector, procrastinate.PsycopgConnector)
    manager = HandBackJobManager(connector)
    app.job_manager = manager
    for spec in tasks.specs():
        app.task(
            name=spec.name,
            queue=spec.queue,
            pass_context=True,
            retry=PolicyRetry(spec.retry, jitter),
        )(_runner_for(spec, settings, db, stop, manager.handed_back))
    for schedule in tasks.schedules():
        target = app.tasks[tasks.require(schedule.task).name]
        app.periodic(
            cron=schedule.cron,
            periodic_id=schedule.name,
            task_kwargs={**schedule.args, PERIODIC_MARK: schedule.name},
        )(target)
    return app


def _runner_for(
    spec: TaskSpec,
    settings: Settings,
    db: Database,
    stopping: threading.Event,
    handed_back: set[int],
) -> Any:
    def run(context: procrastinate.JobContext, **args: Any) -> None:
        job = context.job
        assert job.id is not None
        scheduled_for = None
        schedule = args.pop(PERIODIC_MARK, None)
        if schedule is not None:
            stamp = args.pop(PERIODIC_TIMESTAMP, None)
            if stamp is not None:
                scheduled_for = datetime.fromtimestamp(stamp, UTC)
                first = first_job_of_tick(db, spec.name, str(schedule), int(stamp))
                if first is not None and first != job.id:
                    log.warning(
                        "job.periodic_duplicate_skipped",
                        job_id=job.id,
                        first_job_id=first,
                        schedule=schedule,
                        tick=scheduled_for.isoformat(),
                    )
                    return
        attempt = job.attempts + 1
        bound = log.bind(job_id=job.id, task=spec.name, attempt=attempt)
        ctx = JobContext(
            job_id=job.id,
            attempt=attempt,
            settings=settings,
            db=db,
            scheduled_for=scheduled_for,
            stopping=stopping,
        )
        bound.info("job.started")
        try:
            spec.func(ctx, **args)
        except JobInterrupted:
            handed_back.add(job.id)
            bound.info("job.interrupted", detail="the worker is stopping; queued again")
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]
            final = attempt >= spec.retry.max_attempts
            (bound.error if final else bound.warning)("job.failed", error=error, final=final)
            record_error(db, job.id, spec.name, attempt, error)
            if final:
                spec.given_up(db, args, error)
            raise
        bound.info("job.succeeded")

    run.__name__ = run.__qualname__ = spec.name.replace(".", "_")
    return run


def first_job_of_tick(db: Database, task: str, schedule: str, stamp: int) -> int | None:
    """The first job procrastinate deferred for this tick of ``schedule``.

    Every tick runs once however many workers run. procrastinate's periodic deferrer
    promises one job per tick, yet on a loaded machine two workers deferred the same tick
    of a per-second schedule: two jobs (two ids, both attempt 1) for one tick, seen in the
    suite. (Likely cause, not confirmed: one worker's clean-up of past defer rows deletes
    the tick's row before a lagging worker tries to insert it.) The job
    with the lowest id for a tick is its one run; any other is skipped, whichever worker
    gets to it first (a retried attempt keeps its id, so it still runs)."""
    with db.read() as session:
        found = session.execute(
            text(
                "SELECT min(id) FROM procrastinate_jobs WHERE task_name = :task "
                "AND args ->> :mark = :schedule AND args ->> :stamp_key = :stamp"
            ),
            {
                "task": task,
                "mark": PERIODIC_MARK,
                "schedule": schedule,
                "stamp_key": PERIODIC_TIMESTAMP,
                "stamp": str(stamp),
            },
        ).scalar()
    return int(found) if found is not None else None


def record_error(
    db: Database, job_id: int, task: str, attempt: int, error: str, stalls: int | None = None
) -> None:
    """Keep the latest error of a job where operators can read it (and, after a stall, the
    job's count of them)."""
    values: dict[str, Any] = {
        "job_id": job_id,
        "task": task,
        "attempt": attempt,
        "error": error,
        "at": datetime.now(UTC),
    }
    kept = ["task", "attempt", "error", "at"]
    if stalls is not None:
        values["stalls"] = stalls
        kept.append("stalls")
    statement = pg_insert(JobError).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[JobError.job_id],
        set_={k: statement.excluded[k] for k in kept},
    )
    try:
        with db.transaction() as session:
            session.execute(statement)
    except SQLAlchemyError as exc:  # the job's own outcome matters more than its note
        log.warning("job.error_not_recorded", job_id=job_id, error=type(exc).__name__)


async def recover_stalled_jobs(app: procrastinate.App, settings: Settings, db: Database) -> int:
    """Requeue ``doing`` jobs whose worker stopped sending heartbeats; returns how many.

    One worker at a time (advisory lock): two recoverers could otherwise both requeue
    a job, the second after a live worker had already picked it up again.
    """
    connector = app.connector
    assert isinstance(connector, procrastinate.PsycopgConnector)
    recovered = 0
    async with connector.pool.connection() as lock_conn:
        cursor = await lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (RECOVERY_LOCK,))
        locked = await cursor.fetchone()
        if not locked or not locked[0]:
            return 0
        try:
            await app.job_manager.prune_stalled_workers(settings.job_lease_seconds)
            stalled = await app.job_manager.get_stalled_jobs(
                seconds_since_heartbeat=settings.job_lease_seconds
            )
            for job in stalled:
                if await _recover(app, db, job):
                    recovered += 1
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock(%s)", (RECOVERY_LOCK,))
    return recovered


async def _recover(app: procrastinate.App, db: Database, job: procrastinate_jobs.Job) -> bool:
    """Queue one stalled job again, or fail it for good; False when it moved on meanwhile.

    A resumable task's run goes back uncounted (its checkpoint kept what it did), as a
    graceful hand-back does; any other's counts as an attempt."""
    assert job.id is not None
    spec = tasks.get(job.task_name)
    stalls = await asyncio.to_thread(stalls_of, db, job.id) + 1
    final = spec is None or spec.stall_is_final(job.attempts, stalls)
    uncounted = spec is not None and spec.resumable and not final
    attempt = job.attempts + 1  # the run cut short (counted or not, as below)
    error = stall_error(spec, "its worker stopped sending heartbeats", attempt, stalls, final)
    try:
        if final:
            await app.job_manager.finish_job_by_id_async(
                job_id=job.id, status=procrastinate_jobs.Status.FAILED, delete_job=False
            )
        elif uncounted:
            await app.connector.execute_query_one_async(HAND_BACK_QUERY, job_id=job.id)
        else:
            await app.job_manager.retry_job(job)
    except (procrastinate_exceptions.ConnectorException, procrastinate_exceptions.NoResult):
        return False  # it moved on meanwhile (finished late, or retried)
    await asyncio.to_thread(record_error, db, job.id, job.task_name, attempt, error, stalls)
    if final and spec is not None:
        await asyncio.to_thread(spec.given_up, db, dict(job.task_kwargs), error)
    log.warning(
        "job.stalled_recovered",
        job_id=job.id,
        task=job.task_name,
        attempt=attempt,
        stalls=stalls,
        counted=not uncounted,
        final=final,
    )
    return True


def stalls_of(db: Database, job_id: int) -> int:
    """How many runs of the job its worker did not live through so far."""
    with db.read() as session:
        found = session.get(JobError, job_id)
        return found.stalls if found is not None else 0


def run_worker(
    settings: Settings,
    db: Database,
    stop_event: threading.Event,
    *,
    rng: Jitter | None = None,
    shutdown_seconds: float = SHUTDOWN_GRACE_SECONDS,
) -> None:
    """Run a procrastinate worker until ``stop_event`` is set.

    Once it is, the worker takes no new job and its running tasks see
    ``JobContext.stopping``: a long task hands its job back (uncounted) at its next
    checkpoint instead of holding the stop up for the whole grace period."""
    hide_job_arguments_in_procrastinate_logs()
    tasks_stopping = threading.Event()
    app = build_app(settings, db, rng=rng, stopping=tasks_stopping)
    loop = asyncio.new_event_loop()
    # Sync tasks run on the loop's default executor: size it to the concurrency.
    executor = ThreadPoolExecutor(
        max_workers=settings.worker_concurrency + 2, thread_name_prefix="ledgerlink-job"
    )
    loop.set_default_executor(executor)
    try:
        loop.run_until_complete(
            _serve(app, settings, db, stop_event, shutdown_seconds, tasks_stopping)
        )
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        executor.shutdown(wait=False)


async def _serve(
    app: procrastinate.App,
    settings: Settings,
    db: Database,
    stop_event: threading.Event,
    shutdown_seconds: float,
    tasks_stopping: threading.Event,
) -> None:
    async with app.open_async():
        worker = Worker(
            app=app,
            name="ledgerlink",
            concurrency=settings.worker_concurrency,
            fetch_job_polling_interval=settings.job_poll_seconds,
            abort_job_polling_interval=max(settings.worker_heartbeat_seconds, 1.0),
            shutdown_graceful_timeout=shutdown_seconds,
            update_heartbeat_interval=settings.worker_heartbeat_seconds,
            stalled_worker_timeout=settings.job_lease_seconds,
            install_signal_handlers=False,  # run_worker owns signals, on both back-ends
        )
        running = asyncio.create_task(
            worker.run(),  # type: ignore[no-untyped-call]
            name="procrastinate-worker",
        )
        recovery = asyncio.create_task(_recover_forever(app, settings, db), name="recovery")
        stopping = asyncio.create_task(_wait_for(stop_event), name="stop-watch")
        log.info(
            "jobs.worker_started",
            backend="procrastinate",
            concurrency=settings.worker_concurrency,
            lease_seconds=settings.job_lease_seconds,
        )
        try:
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            recovery.cancel()
            if not running.done():
                # procrastinate stops its heartbeat before draining jobs; keep beating
                # so a job that is finishing is not recovered (and run twice) meanwhile.
                keepalive = asyncio.create_task(_keep_alive(app, worker, settings))
                worker.stop()  # type: ignore[no-untyped-call]
                # Only now tell running tasks: the worker fetches nothing more, so a job
                # handed back here goes to the next worker, not to this one again.
                tasks_stopping.set()
                try:
                    await running
                finally:
                    keepalive.cancel()
                    # awaited, so it ends here: a cancelled task left pending is closed by
                    # the garbage collector later, mid-query ("Exception ignored in")
                    await asyncio.gather(keepalive, return_exceptions=True)
            await asyncio.gather(recovery, stopping, return_exceptions=True)
        running.result()
        if not stop_event.is_set():
            # procrastinate stops a worker whose listener or heartbeat failed; exit
            # with an error so that the process supervisor restarts it.
            raise RuntimeError("the procrastinate worker stopped on its own; see the log")
        log.info("jobs.worker_stopped", backend="procrastinate")


async def _recover_forever(app: procrastinate.App, settings: Settings, db: Database) -> None:
    interval = max(0.5, min(60.0, settings.job_lease_seconds / 2))
    while True:
        try:
            await recover_stalled_jobs(app, settings, db)
        except Exception as exc:  # recovery must outlive a database hiccup
            log.warning("jobs.recovery_error", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(interval)


async def _keep_alive(app: procrastinate.App, worker: Worker, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.worker_heartbeat_seconds)
        worker_id = worker.worker_id
        if worker_id is None:
            return
        with contextlib.suppress(procrastinate_exceptions.ConnectorException):
            await app.job_manager.update_heartbeat(worker_id)


async def _wait_for(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(0.1)


def prune_finished(db: Database, older_than: timedelta) -> None:
    """Delete procrastinate jobs that finished before ``older_than`` ago (any final state)."""
    # procrastinate's query builds the interval from text: keep it plain decimal.
    hours = f"{older_than.total_seconds() / 3600:.6f}"
    with db.transaction() as session:
        connection: Any = session.connection().connection.driver_connection
        connection.execute(
            procrastinate_queries["delete_old_jobs"],
            {
                "nb_hours": hours,
                "queue": None,
                "statuses": ["succeeded", "failed", "cancelled", "aborted"],
            },
        )
        session.execute(
            text(
                "DELETE FROM job_errors e WHERE NOT EXISTS "
                "(SELECT 1 FROM procrastinate_jobs j WHERE j.id = e.job_id)"
            )
        )


class _HideJobArguments(logging.Filter):
    """procrastinate logs each job's call string, arguments included; ours may carry
    identifiers customers consider private, so its records keep the job id and task only."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = getattr(record, "job", None)
        if isinstance(job, dict):
            record.job = {k: v for k, v in job.items() if k not in ("task_kwargs", "call_string")}
            action = getattr(record, "action", "job")
            record.msg = f"procrastinate {action}: {job.get('task_name')}[{job.get('id')}]"
            record.args = ()
        return True


def hide_job_arguments_in_procrastinate_logs() -> None:
    redact = _HideJobArguments()
    for name in (
        "procrastinate.worker",
        "procrastinate.worker.ledgerlink",
        "procrastinate.jobs",
        "procrastinate.periodic",
        "procrastinate.manager",
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HideJobArguments) for f in logger.filters):
            logger.addFilter(redact)


def _live_window(settings: Settings) -> float:
    return max(3 * settings.worker_heartbeat_seconds, settings.job_lease_seconds)
