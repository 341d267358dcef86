"""Jobs ledgerlink always runs, whatever plug-ins are loaded.

``jobs.prune`` keeps the job store small: finished jobs are only useful for a while
(the dashboard shows the last day; two weeks leaves time to investigate a failure).
Stalled-job recovery needs no task: every worker runs it itself (see the back-ends),
so it works even when no worker is free to pick up a job.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from ledgerlink.jobs import embedded
from ledgerlink.jobs.registry import JobContext, RetryPolicy, tasks

log = structlog.get_logger("ledgerlink.jobs")

KEEP_FINISHED = timedelta(days=14)


@tasks.task("jobs.prune", retry=RetryPolicy(max_attempts=3, base_delay=60.0))
def prune(ctx: JobContext, *, keep_days: float = KEEP_FINISHED.days) -> None:
    """Delete jobs that finished more than ``keep_days`` ago (succeeded or failed)."""
    older_than = timedelta(days=keep_days)
    if ctx.settings.job_backend == "procrastinate":
        # deferred: procrastinate and its psycopg pool load only on the PostgreSQL back-end
        from ledgerlink.jobs.procrastinate_backend import prune_finished

        prune_finished(ctx.db, older_than)
    else:
        deleted = embedded.prune_finished(ctx.db, older_than)
        log.info("jobs.pruned", deleted=deleted, keep_days=keep_days)


# Daily, off the hour so it does not coincide with everyone's midnight jobs.
tasks.periodic("jobs.prune.daily", "17 3 * * *", task="jobs.prune")

# The audit chain checks (quarter-hourly and nightly) live in ledgerlink/audit_jobs.py.
