"""The job port: what the rest of ledgerlink may ask of the job queue.

Two adapters implement it: the embedded runner's ``jobs`` table (SQLite) and
procrastinate (PostgreSQL). Callers enqueue **inside their own session**, so a job
exists exactly when the state change that caused it committed: no lost jobs when the
process dies after commit, no phantom jobs for changes that rolled back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy.orm import Session

from ledgerlink.jobs.registry import RESERVED_ARGS, TaskSpec, tasks

if TYPE_CHECKING:
    from ledgerlink.settings import Settings
    from ledgerlink.store.db import Database

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@dataclass(frozen=True)
class JobHealth:
    """The queue at a glance, for /readyz, the dashboard and monitoring.

    ``ok`` is False only when the job store cannot be reached or has no schema; an
    idle queue without workers is a fact to show, not an outage of this process.
    """

    ok: bool
    backend: str
    detail: str
    live_workers: int
    queued: int
    oldest_due_seconds: float | None
    #: Jobs that ran out of attempts in the last 24 hours: the dashboard's red number.
    failed_last_day: int = 0


@dataclass(frozen=True)
class JobInfo:
    """One job as both back-ends can describe it."""

    id: int
    task: str
    status: JobStatus
    attempts: int  # runs started so far, the one under way included
    run_at: datetime | None
    last_error: str | None
    #: Runs whose worker died under them (a resumable job's are not in ``attempts``).
    stalls: int = 0


class JobQueue(Protocol):
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
        """Add a job in the caller's transaction and return its id.

        Returns None, leaving the caller's transaction usable, when a job with the same
        ``dedup_key`` is still queued or running. Raises ValueError for an unknown task,
        arguments that are not JSON, or both ``run_at`` and ``delay``.
        """
        ...

    def health(self) -> JobHealth: ...

    def get(self, job_id: int) -> JobInfo | None:
        """The job's state, or None when it does not exist (rolled back or pruned)."""
        ...


@dataclass(frozen=True)
class EnqueueRequest:
    """An enqueue call checked once, the same way for both back-ends."""

    spec: TaskSpec
    args: dict[str, Any]
    run_at: datetime | None  # None: as soon as possible
    dedup_key: str | None


def check_enqueue(
    task: str,
    args: dict[str, Any] | None,
    run_at: datetime | None,
    delay: timedelta | None,
    dedup_key: str | None,
) -> EnqueueRequest:
    spec = tasks.require(task)
    payload = dict(args or {})
    reserved = RESERVED_ARGS & set(payload)
    if reserved:
        raise ValueError(f"job arguments {sorted(reserved)} are reserved for periodic jobs")
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"arguments for job task {task!r} must be JSON values (str, int, float, bool, "
            f"None, lists and dicts of them): {exc}"
        ) from None
    if run_at is not None and delay is not None:
        raise ValueError("give either run_at or delay, not both")
    if run_at is not None and run_at.tzinfo is None:
        raise ValueError("run_at must be timezone-aware, e.g. datetime.now(UTC)")
    if delay is not None:
        run_at = datetime.now(UTC) + delay
    if dedup_key is not None and not 0 < len(dedup_key) <= 200:
        raise ValueError("dedup_key needs 1 to 200 characters")
    return EnqueueRequest(spec=spec, args=payload, run_at=run_at, dedup_key=dedup_key)


def job_queue(settings: Settings, db: Database) -> JobQueue:
    """The adapter for this deployment: procrastinate on PostgreSQL, else embedded."""
    # cycle: both adapters import this module (their shared types); importing them here,
    # when a queue is built, breaks it.
    if settings.job_backend == "procrastinate":
        # deferred: procrastinate and psycopg's pool (1 s) load only on PostgreSQL
        from ledgerlink.jobs.procrastinate_backend import ProcrastinateJobQueue

        return ProcrastinateJobQueue(settings, db)
    from ledgerlink.jobs.embedded import EmbeddedJobQueue  # cycle: it imports this module

    return EmbeddedJobQueue(settings, db)
