"""The payment jobs' names, and asking for a drain in the transaction that stores events.

Kept apart from :mod:`ledgerlink.payments.jobs` (which runs the drain with the processor)
so the modules that store events — the inbox's callers, the poller, the processor itself
— can ask for a drain without importing what runs it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ledgerlink.jobs.port import JobQueue

PROCESS = "payments.process"
POLL = "payments.poll"


def request_processing(runtime_jobs: JobQueue, session: Session) -> None:
    """Make sure a drain runs after ``session`` commits (one queued drain is enough)."""
    runtime_jobs.enqueue(session, PROCESS, dedup_key=PROCESS)


__all__ = ["POLL", "PROCESS", "request_processing"]
