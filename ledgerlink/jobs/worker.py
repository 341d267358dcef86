"""``ledgerlink worker``: run jobs until told to stop, on whichever back-end is configured.

SIGTERM and SIGINT ask for a clean stop: no new jobs are taken and running ones get a
bounded time to finish; a long job (bulk link, sync run, payments drain) sees
``JobContext.stopping`` and hands back at its next checkpoint, queued again with its
attempt uncounted, on both back-ends. A second signal falls back to the default handler (a second
Ctrl-C ends the process at once); a job cut off that way runs again on another worker.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import structlog

from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.jobs.embedded import EmbeddedRunner
from ledgerlink.jobs.registry import Jitter, load_task_modules
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database

log = structlog.get_logger("ledgerlink.jobs")


def run_worker(
    settings: Settings,
    *,
    stop_event: threading.Event | None = None,
    rng: Jitter | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Run jobs until ``stop_event`` is set or the process gets SIGTERM/SIGINT.

    ``rng`` fixes the retry jitter and ``clock`` the time that due times, retry delays
    and leases are judged on (tests); production leaves both alone. procrastinate
    schedules on PostgreSQL's clock, so ``clock`` applies to the embedded runner.
    """
    load_task_modules(settings)
    stop = stop_event or threading.Event()
    db = Database(
        settings.resolved_database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    try:
        with _stop_on_signals(stop):
            if settings.job_backend == "procrastinate":
                # deferred: procrastinate loads only on the PostgreSQL back-end
                from ledgerlink.jobs import procrastinate_backend

                procrastinate_backend.run_worker(settings, db, stop, rng=rng)
            else:
                EmbeddedRunner(settings, db, rng=rng, clock=clock).run_forever(stop)
    finally:
        db.dispose()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only; its owner stops us via the event
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("jobs.stop_requested", signal=signal.Signals(signum).name)
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
