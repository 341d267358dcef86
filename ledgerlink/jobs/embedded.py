"""The embedded job back-end: the ``jobs`` table and a threaded runner (SQLite).

One command runs the whole product, so the runner lives in the web process (or in any
number of ``ledgerlink worker`` processes on the same host). Correctness never depends
on there being one runner:

* a claim is ``UPDATE … WHERE id = ? AND status = 'queued'``: exactly one runner wins;
* a claimed job carries a lease that a heartbeat thread renews while the job runs; a
  runner that dies (kill -9, power loss) stops renewing, and once the lease expires any
  runner puts the job back in the queue: jobs run at least once, never zero times;
* a periodic tick is enqueued by whichever runner inserts its ``periodic_ticks`` row.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.jobs.port import JobHealth, JobInfo, JobStatus, check_enqueue
from ledgerlink.jobs.registry import (
    MAX_STALLS,
    PERIODIC_MARK,
    PERIODIC_TIMESTAMP,
    Jitter,
    JobContext,
    JobInterrupted,
    PeriodicSchedule,
    load_task_modules,
    stall_error,
    tasks,
)
from ledgerlink.jobs.ticks import due_tick
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.models import Job, PeriodicTick, WorkerHeartbeat

log = structlog.get_logger("ledgerlink.jobs")

PENDING = ("queued", "running")
ERROR_LIMIT = 4000  # characters of an error message kept on the job


def utcnow() -> datetime:
    return datetime.now(UTC)


class EmbeddedJobQueue:
    """The job port on the ``jobs`` table."""

    backend = "embedded"

    def __init__(self, settings: Settings, db: Database):
        self.settings = settings
        self.db = db

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
        return insert_job(
            session,
            task=request.spec.name,
            args=request.args,
            queue=request.spec.queue,
            max_attempts=request.spec.retry.max_attempts,
            run_at=request.run_at,
            dedup_key=request.dedup_key,
        )

    def health(self) -> JobHealth:
        now = utcnow()
        live_since = now - timedelta(seconds=_live_window(self.settings))
        try:
            with self.db.read() as session:
                queued = session.scalar(
                    select(func.count()).select_from(Job).where(Job.status == "queued")
                )
                oldest = session.scalar(
                    select(func.min(Job.run_at)).where(Job.status == "queued", Job.run_at <= now)
                )
                workers = session.scalar(
                    select(func.count())
                    .select_from(WorkerHeartbeat)
                    .where(WorkerHeartbeat.seen_at >= live_since)
                )
                failed = session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.status == "failed", Job.finished_at >= now - timedelta(days=1))
                )
        except SQLAlchemyError as exc:
            return JobHealth(
                ok=False,
                backend=self.backend,
                detail=f"job store unreachable: {type(exc).__name__}",
                live_workers=0,
                queued=0,
                oldest_due_seconds=None,
            )
        oldest_due = (now - oldest).total_seconds() if oldest is not None else None
        return JobHealth(
            ok=True,
            backend=self.backend,
            detail=f"{workers or 0} live worker(s), {queued or 0} queued",
            live_workers=int(workers or 0),
            queued=int(queued or 0),
            oldest_due_seconds=oldest_due,
            failed_last_day=int(failed or 0),
        )

    def get(self, job_id: int) -> JobInfo | None:
        with self.db.read() as session:
            job = session.get(Job, job_id)
            if job is None:
                return None
            status: JobStatus = job.status  # type: ignore[assignment]
            return JobInfo(
                id=job.id,
                task=job.task,
                status=status,
                attempts=job.attempts,
                run_at=job.run_at,
                last_error=job.last_error,
                stalls=job.stalls,
            )


def insert_job(
    session: Session,
    *,
    task: str,
    args: dict[str, Any],
    queue: str,
    max_attempts: int,
    run_at: datetime | None,
    dedup_key: str | None,
) -> int | None:
    """Insert a queued job in ``session``'s transaction; None when deduplicated."""
    if dedup_key is not None:
        # Under SQLite's BEGIN IMMEDIATE nobody else can insert between this look and
        # the insert; elsewhere the unique index below settles any race.
        existing = session.connection().execute(_PENDING_WITH_KEY, {"key": dedup_key}).scalar()
        if existing is not None:
            log.debug("job.deduplicated", task=task, existing_job_id=existing)
            return None
    now = utcnow()
    values = {
        "task": task,
        "args": args,
        "queue": queue,
        "status": "queued",
        "dedup_key": dedup_key,
        "run_at": run_at or now,
        "attempts": 0,
        "max_attempts": max_attempts,
        "created_at": now,
    }
    try:
        # A savepoint, so that losing the dedup race leaves the caller's work intact.
        with session.begin_nested():
            job_id = int(
                session.execute(insert(Job).values(**values).returning(Job.id)).scalar_one()
            )
    except IntegrityError:
        if dedup_key is None:
            raise
        log.debug("job.deduplicated", task=task)
        return None
    log.debug("job.enqueued", job_id=job_id, task=task)
    return job_id


#: A waiting or running job with this dedup key. Built once: every inbound batch and drain
#: step enqueues through it, and building the statement cost more than running it.
_PENDING_WITH_KEY = (
    select(Job.id)
    .where(Job.dedup_key == bindparam("key"), or_(*(Job.status == status for status in PENDING)))
    .limit(1)
)


@dataclass(frozen=True)
class _Claimed:
    id: int
    task: str
    args: dict[str, Any]
    attempt: int
    max_attempts: int


class EmbeddedRunner:
    """Runs queued jobs on ``settings.worker_concurrency`` threads.

    ``start()`` returns at once (for the web process); ``run_forever(stop_event)``
    blocks (for ``ledgerlink worker``). ``stop()`` lets running jobs finish for up to
    ``shutdown_seconds`` and then leaves: a job still running keeps its state
    ``running`` until its lease expires and another runner takes it again, so nothing
    is ever marked done or failed half-way.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        worker_id: str | None = None,
        rng: Jitter | None = None,
        shutdown_seconds: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self.settings = settings
        #: Due times, retry delays and leases are judged on this clock (tests move it).
        self.clock = clock
        self.db = db
        self.worker_id = worker_id or _worker_id()
        self.rng: Jitter = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self.shutdown_seconds = shutdown_seconds
        self.lease = timedelta(seconds=settings.job_lease_seconds)
        # Renew well inside the lease so one slow write never costs a job its lease.
        self.renew_every = min(settings.worker_heartbeat_seconds, settings.job_lease_seconds / 3)
        self.tick_every = min(0.5, self.renew_every)
        self._stopping = threading.Event()
        self._workers: list[threading.Thread] = []
        self._maintenance: threading.Thread | None = None
        self._maintenance_stop = threading.Event()
        self._running: dict[int, _Claimed] = {}
        self._running_lock = threading.Lock()
        self._last_ticks: dict[str, datetime] = {}
        self._started = False

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            raise RuntimeError("an EmbeddedRunner starts once")
        self._started = True
        # The web process may start its runner before anything else loaded the tasks.
        load_task_modules(self.settings)
        self._beat(first=True)
        self._load_last_ticks()
        self._maintenance = threading.Thread(
            target=self._maintain, name=f"jobs-maintenance-{self.worker_id}", daemon=True
        )
        self._maintenance.start()
        for n in range(self.settings.worker_concurrency):
            # Daemon threads: a job that outlives the shutdown grace must not keep the
            # process alive; its lease makes another runner take it over.
            thread = threading.Thread(target=self._work, name=f"jobs-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)
        log.info(
            "jobs.runner_started",
            worker_id=self.worker_id,
            concurrency=self.settings.worker_concurrency,
            lease_seconds=self.settings.job_lease_seconds,
        )

    def stop(self) -> None:
        """Stop taking jobs; wait (bounded) for running ones; leave nothing half-done."""
        if not self._started or self._stopping.is_set():
            return
        self._stopping.set()
        deadline = time.monotonic() + self.shutdown_seconds  # real time: it bounds joins
        for thread in self._workers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._running_lock:
            unfinished = sorted(self._running)
        if unfinished:
            log.warning(
                "jobs.runner_stop_timeout",
                worker_id=self.worker_id,
                job_ids=unfinished,
                detail="left running; another runner takes them over when the lease expires",
            )
        self._maintenance_stop.set()
        if self._maintenance is not None:
            self._maintenance.join(timeout=10)
        if not unfinished:
            self._forget_heartbeat()
        log.info("jobs.runner_stopped", worker_id=self.worker_id)

    def is_alive(self) -> bool:
        return (
            self._started
            and not self._stopping.is_set()
            and self._maintenance is not None
            and self._maintenance.is_alive()
            and all(thread.is_alive() for thread in self._workers)
        )

    def run_forever(self, stop_event: threading.Event) -> None:
        self.start()
        try:
            while not stop_event.wait(1.0):
                if not self.is_alive():
                    raise RuntimeError("the embedded job runner lost a thread")
        finally:
            self.stop()

    # -- running jobs -----------------------------------------------------------------

    def _work(self) -> None:
        poll = self.settings.job_poll_seconds
        while not self._stopping.is_set():
            try:
                claimed = self._claim()
            except Exception as exc:  # a database hiccup must not end the thread
                log.warning("jobs.claim_error", worker_id=self.worker_id, error=_describe(exc))
                claimed = None
            if claimed is None:
                self._stopping.wait(poll)
                continue
            self._run(claimed)

    def _claim(self) -> _Claimed | None:
        now = self.clock.now()
        with self.db.read() as session:
            candidates = session.scalars(
                select(Job.id)
                .where(Job.status == "queued", Job.run_at <= now)
                .order_by(Job.run_at, Job.id)
                .limit(8)
            ).all()
        for job_id in candidates:
            claimed = self._try_claim(job_id)
            if claimed is not None:
                return claimed
        return None

    def _try_claim(self, job_id: int) -> _Claimed | None:
        now = self.clock.now()
        with self.db.transaction() as session:
            won = session.execute(
                update(Job)
                # Re-check due time: the candidate list may predate a retry's backoff.
                .where(Job.id == job_id, Job.status == "queued", Job.run_at <= now)
                .values(
                    status="running",
                    locked_by=self.worker_id,
                    lease_expires_at=now + self.lease,
                    attempts=Job.attempts + 1,
                    started_at=now,
                )
            )
            if won.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row = session.execute(
                select(Job.task, Job.args, Job.attempts, Job.max_attempts).where(Job.id == job_id)
            ).one()
            claimed = _Claimed(
                id=job_id,
                task=row.task,
                args=dict(row.args or {}),
                attempt=row.attempts,
                max_attempts=row.max_attempts,
            )
        with self._running_lock:
            self._running[job_id] = claimed
        return claimed

    def _run(self, job: _Claimed) -> None:
        bound = log.bind(job_id=job.id, task=job.task, attempt=job.attempt)
        try:
            spec = tasks.get(job.task)
            args = dict(job.args)
            scheduled_for = None
            if args.pop(PERIODIC_MARK, None) is not None:
                stamp = args.pop(PERIODIC_TIMESTAMP, None)
                if stamp is not None:
                    scheduled_for = datetime.fromtimestamp(stamp, UTC)
            if spec is None:
                bound.error("job.failed", error="unknown task", final=True)
                self._finish_failed(job, f"unknown job task {job.task!r} (not loaded here)")
                return
            ctx = JobContext(
                job_id=job.id,
                attempt=job.attempt,
                settings=self.settings,
                db=self.db,
                scheduled_for=scheduled_for,
                stopping=self._stopping,
            )
            bound.info("job.started")
            try:
                spec.func(ctx, **args)
            except JobInterrupted:
                self._interrupted(job, bound)
            except Exception as exc:
                self._failed(job, exc, bound)
            else:
                self._succeeded(job, bound)
        except Exception as exc:  # bookkeeping failed; the lease brings the job back
            bound.exception("job.bookkeeping_error", error=_describe(exc))
        finally:
            with self._running_lock:
                self._running.pop(job.id, None)

    def _mine(self, job: _Claimed) -> Any:
        return (
            Job.id == job.id,
            Job.status == "running",
            Job.locked_by == self.worker_id,
        )

    def _succeeded(self, job: _Claimed, bound: Any) -> None:
        with self.db.transaction() as session:
            done = session.execute(
                update(Job)
                .where(*self._mine(job))
                .values(
                    status="succeeded",
                    finished_at=self.clock.now(),
                    locked_by=None,
                    lease_expires_at=None,
                )
            )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            bound.info("job.succeeded")
        else:
            bound.warning("job.lease_lost", detail="another runner took the job over")

    def _failed(self, job: _Claimed, exc: Exception, bound: Any) -> None:
        error = _describe(exc)
        spec = tasks.get(job.task)
        if job.attempt >= job.max_attempts:
            bound.error("job.failed", error=error, final=True)
            self._finish_failed(job, error)
            if spec is not None:
                spec.given_up(self.db, job.args, error)
            return
        delay = spec.retry.delay_for(job.attempt, self.rng) if spec else 0.0
        self._requeue(job, self.clock.now() + timedelta(seconds=delay), last_error=error)
        bound.warning("job.failed", error=error, final=False, retry_in_seconds=round(delay, 3))

    def _interrupted(self, job: _Claimed, bound: Any) -> None:
        """The task stopped because this runner is stopping: queue it again now, the
        attempt not counted (it did not fail)."""
        self._requeue(job, self.clock.now(), attempts=Job.attempts - 1)
        bound.info("job.interrupted", detail="the runner is stopping; queued again")

    def _requeue(self, job: _Claimed, run_at: datetime, **values: Any) -> None:
        with self.db.transaction() as session:
            session.execute(
                update(Job)
                .where(*self._mine(job))
                .values(
                    status="queued", run_at=run_at, locked_by=None, lease_expires_at=None, **values
                )
            )

    def _finish_failed(self, job: _Claimed, error: str) -> None:
        with self.db.transaction() as session:
            session.execute(
                update(Job)
                .where(*self._mine(job))
                .values(
                    status="failed",
                    last_error=error,
                    finished_at=self.clock.now(),
                    locked_by=None,
                    lease_expires_at=None,
                )
            )

    # -- maintenance: heartbeat, leases, expired leases, periodic ticks --------------------

    def _maintain(self) -> None:
        next_beat = 0.0
        while not self._maintenance_stop.is_set():
            try:
                if self.clock.monotonic() >= next_beat:
                    self._beat()
                    next_beat = self.clock.monotonic() + self.renew_every
                if not self._stopping.is_set():
                    self._requeue_expired()
                    self._enqueue_due_ticks()
            except Exception as exc:  # leases must keep being renewed whatever happens
                log.warning(
                    "jobs.maintenance_error", worker_id=self.worker_id, error=_describe(exc)
                )
            self._maintenance_stop.wait(self.tick_every)

    def _beat(self, *, first: bool = False) -> None:
        """Announce this runner and renew the leases of the jobs it is running."""
        now = self.clock.now()
        with self._running_lock:
            running = list(self._running)
        with self.db.transaction() as session:
            updated = session.execute(
                update(WorkerHeartbeat)
                .where(WorkerHeartbeat.worker_id == self.worker_id)
                .values(seen_at=now)
            )
            if updated.rowcount == 0:  # type: ignore[attr-defined]
                session.add(WorkerHeartbeat(worker_id=self.worker_id, started_at=now, seen_at=now))
            renewed: set[int] = set()
            if running:
                renewed = set(
                    session.scalars(
                        update(Job)
                        .where(
                            Job.id.in_(running),
                            Job.status == "running",
                            Job.locked_by == self.worker_id,
                        )
                        .values(lease_expires_at=now + self.lease)
                        .returning(Job.id)
                    )
                )
            if first:
                # Heartbeats of runners long gone only clutter the live-worker count.
                session.execute(
                    delete(WorkerHeartbeat).where(
                        WorkerHeartbeat.seen_at < now - timedelta(hours=1)
                    )
                )
        with self._running_lock:
            # Jobs that finished meanwhile are fine; one still running here was taken
            # over by another runner (this one stalled past its lease) and runs twice.
            lost = (set(running) - renewed) & set(self._running)
        if lost:
            log.warning("job.lease_lost", worker_id=self.worker_id, job_ids=sorted(lost))

    def _forget_heartbeat(self) -> None:
        try:
            with self.db.transaction() as session:
                session.execute(
                    delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == self.worker_id)
                )
        except SQLAlchemyError as exc:
            log.warning("jobs.heartbeat_cleanup_error", error=_describe(exc))

    def _requeue_expired(self) -> None:
        """Put back jobs whose runner stopped renewing their lease (killed, hung, lost).

        A resumable task's run goes back uncounted (its checkpoint kept what it did), as a
        graceful hand-back does; any other's counted as the attempt it was."""
        now = self.clock.now()
        with self.db.read() as session:
            expired = session.execute(
                select(
                    Job.id,
                    Job.task,
                    Job.args,
                    Job.attempts,
                    Job.max_attempts,
                    Job.stalls,
                    Job.locked_by,
                )
                .where(Job.status == "running", Job.lease_expires_at < now)
                .limit(50)
            ).all()
        for row in expired:
            spec = tasks.get(row.task)
            stalls = row.stalls + 1
            if spec is not None and spec.resumable:
                final = stalls >= MAX_STALLS
            else:
                final = spec is None or row.attempts >= row.max_attempts
            uncounted = spec is not None and spec.resumable and not final
            error = stall_error(
                spec,
                f"worker {row.locked_by} stopped renewing its lease",
                row.attempts,
                stalls,
                final,
            )
            values: dict[str, Any] = {
                "status": "failed" if final else "queued",
                "locked_by": None,
                "lease_expires_at": None,
                "last_error": error,
                "stalls": stalls,
            }
            if final:
                values["finished_at"] = now
            else:
                values["run_at"] = now
            if uncounted:
                values["attempts"] = Job.attempts - 1
            with self.db.transaction() as session:
                taken = session.execute(
                    update(Job)
                    .where(Job.id == row.id, Job.status == "running", Job.lease_expires_at < now)
                    .values(**values)
                )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue
            if final and spec is not None:
                spec.given_up(self.db, dict(row.args or {}), error)
            log.warning(
                "job.lease_expired",
                job_id=row.id,
                task=row.task,
                attempt=row.attempts,
                stalls=stalls,
                counted=not uncounted,
                final=final,
            )

    def _load_last_ticks(self) -> None:
        with self.db.read() as session:
            rows = session.execute(
                select(PeriodicTick.schedule, func.max(PeriodicTick.due_at)).group_by(
                    PeriodicTick.schedule
                )
            ).all()
        for schedule, due_at in rows:
            if due_at is not None:
                self._last_ticks[schedule] = due_at

    def _enqueue_due_ticks(self) -> None:
        now = self.clock.now()
        for schedule in tasks.schedules():
            tick = due_tick(schedule.cron, self._last_ticks.get(schedule.name), now)
            if tick is not None:
                self._enqueue_tick(schedule, tick)
                self._last_ticks[schedule.name] = tick

    def _enqueue_tick(self, schedule: PeriodicSchedule, tick: datetime) -> None:
        spec = tasks.require(schedule.task)
        args = {
            **schedule.args,
            PERIODIC_MARK: schedule.name,
            PERIODIC_TIMESTAMP: int(tick.timestamp()),
        }
        try:
            with self.db.transaction() as session:
                session.add(PeriodicTick(schedule=schedule.name, due_at=tick))
                session.flush()  # the tick row decides which runner enqueues
                job_id = insert_job(
                    session,
                    task=spec.name,
                    args=args,
                    queue=spec.queue,
                    max_attempts=spec.retry.max_attempts,
                    run_at=tick,
                    dedup_key=None,
                )
        except IntegrityError:
            return  # another runner enqueued this tick
        log.info(
            "job.periodic_enqueued", schedule=schedule.name, job_id=job_id, tick=tick.isoformat()
        )


def prune_finished(db: Database, older_than: timedelta) -> int:
    """Delete jobs finished before ``older_than`` ago, and old periodic bookkeeping."""
    cutoff = utcnow() - older_than
    with db.transaction() as session:
        deleted = session.execute(
            delete(Job).where(
                Job.status.in_(("succeeded", "failed", "cancelled")), Job.finished_at < cutoff
            )
        ).rowcount  # type: ignore[attr-defined]
        later = aliased(PeriodicTick)
        superseded = exists().where(
            later.schedule == PeriodicTick.schedule, later.due_at > PeriodicTick.due_at
        )
        # Keep each schedule's latest tick: it is what tells a restarted runner that
        # the tick already ran.
        session.execute(delete(PeriodicTick).where(PeriodicTick.due_at < cutoff, superseded))
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.seen_at < cutoff))
    return int(deleted or 0)


def _live_window(settings: Settings) -> float:
    return max(3 * settings.worker_heartbeat_seconds, settings.job_lease_seconds)


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:ERROR_LIMIT]


def _worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"
