"""Job tasks for the job tests, loaded with ``task_modules=["tests.support.job_tasks"]``.

Every execution leaves rows in ``job_effects`` (a test-only table in the test's own
database), so a test, or a worker in another process, can see what ran, which attempt
it was and when, on either back-end. Nothing here imports pytest: worker subprocesses
import this module too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
    text,
    update,
)

from ledgerlink.jobs.registry import JobContext, JobInterrupted, RetryPolicy, tasks
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.models import Job, JobError

TASK_MODULE = "tests.support.job_tasks"

metadata = MetaData()
effects = Table(
    "job_effects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("label", String(100), nullable=False),
    Column("event", String(20), nullable=False),  # started, finished, ran, tick
    Column("job_id", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("tick", String(40)),
    Column("at", Float, nullable=False),  # time.time() of the event
    Column("pid", Integer, nullable=False),  # which worker process ran it
)


@dataclass(frozen=True)
class Effect:
    label: str
    event: str
    job_id: int
    attempt: int
    tick: str | None
    at: float
    pid: int


def create_effects_table(db: Database) -> None:
    metadata.create_all(db.engine)


def effects_of(db: Database, label: str, event: str | None = None) -> list[Effect]:
    query = select(effects).where(effects.c.label == label).order_by(effects.c.id)
    if event is not None:
        query = query.where(effects.c.event == event)
    with db.read() as session:
        return [
            Effect(r.label, r.event, r.job_id, r.attempt, r.tick, r.at, r.pid)
            for r in session.execute(query)
        ]


def _note(ctx: JobContext, label: str, event: str, tick: str | None = None) -> None:
    with ctx.db.transaction() as session:
        session.execute(
            insert(effects).values(
                label=label,
                event=event,
                job_id=ctx.job_id,
                attempt=ctx.attempt,
                tick=tick,
                at=time.time(),
                pid=os.getpid(),
            )
        )


@tasks.task("test.record")
def record(ctx: JobContext, *, label: str) -> None:
    _note(ctx, label, "ran")


@tasks.task("test.flaky", retry=RetryPolicy(max_attempts=4, base_delay=0.3, max_delay=1.0))
def flaky(ctx: JobContext, *, label: str, failures: int) -> None:
    """Fails its first ``failures`` attempts, then succeeds."""
    _note(ctx, label, "started")
    if ctx.attempt <= failures:
        raise RuntimeError(f"planned failure {ctx.attempt} of {failures}")
    _note(ctx, label, "finished")


@tasks.task("test.always_fails", retry=RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.1))
def always_fails(ctx: JobContext, *, label: str) -> None:
    _note(ctx, label, "started")
    raise RuntimeError("the upstream said no")


@tasks.task("test.slow", retry=RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=0.1))
def slow(ctx: JobContext, *, label: str, seconds: float) -> None:
    _note(ctx, label, "started")
    time.sleep(seconds)
    _note(ctx, label, "finished")


@tasks.task("test.until_stopped")
def until_stopped(ctx: JobContext, *, label: str) -> None:
    """A long job with a checkpoint: works until its runner stops, then hands back; run
    again, it sees its checkpoint (the "interrupted" effect) and finishes."""
    if effects_of(ctx.db, label, "interrupted"):
        _note(ctx, label, "finished")
        return
    _note(ctx, label, "started")
    while not ctx.stopping.wait(0.05):
        pass
    _note(ctx, label, "interrupted")
    raise JobInterrupted


def _given_up(db: Database, args: dict[str, Any], error: str) -> None:
    """What a run row's task does once its job failed for good: here, leave an effect."""
    with db.transaction() as session:
        session.execute(
            insert(effects).values(
                label=args["label"],
                event="given_up",
                job_id=0,
                attempt=0,
                at=time.time(),
                pid=os.getpid(),
            )
        )


@tasks.task(
    "test.resumable", retry=RetryPolicy(max_attempts=1), resumable=True, on_given_up=_given_up
)
def resumable(ctx: JobContext, *, label: str) -> None:
    """A job with its own checkpoint, allowed one attempt: only its worker dying under it
    may send it round again."""
    _note(ctx, label, "finished")


@tasks.task("test.tick")
def tick(ctx: JobContext, *, label: str = "tick") -> None:
    stamp = ctx.scheduled_for.isoformat() if ctx.scheduled_for else None
    _note(ctx, label, "tick", tick=stamp)


class MaxJitter:
    """Backoff without randomness: always the top of the jitter window."""

    def uniform(self, a: float, b: float) -> float:
        return b


def leave_as_a_killed_worker_would(
    db: Database, backend: str, job_id: int, task: str, *, earlier_stalls: int = 0
) -> None:
    """The job's state once the worker running it died (SIGKILL, out of memory): running,
    its worker gone (no lease renewed, no heartbeat), ``earlier_stalls`` such deaths before."""
    with db.transaction() as session:
        if backend == "sqlite":
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    status="running",
                    locked_by="killed-runner",
                    attempts=1,
                    stalls=earlier_stalls,
                    lease_expires_at=datetime.now(UTC) - timedelta(seconds=1),
                )
            )
        else:
            # procrastinate's view: 'doing', its worker's row already pruned
            session.execute(
                text(
                    "UPDATE procrastinate_jobs SET status = 'doing', worker_id = NULL "
                    "WHERE id = :id"
                ),
                {"id": job_id},
            )
            session.execute(
                insert(JobError).values(
                    job_id=job_id,
                    task=task,
                    attempt=1,
                    error="an earlier stall",
                    stalls=earlier_stalls,
                )
            )


@contextmanager
def worker_thread(settings: Settings, **kwargs: Any) -> Iterator[threading.Event]:
    """Run ``run_worker`` in a thread of this process; stop it cleanly on exit."""
    from ledgerlink.jobs.worker import run_worker

    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_worker(settings, stop_event=stop, **kwargs)
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-worker", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=40)
    assert not thread.is_alive(), "the worker did not stop within 40s"
    if errors:
        raise errors[0]
