"""Jobs ledgerlink always runs, whatever plug-ins are loaded.

``jobs.prune`` keeps the job store small: finished jobs are only useful for a while
(the dashboard shows the last day; two weeks leaves time to investigate a failure).
Stalled-job recovery needs no task: every worker runs it itself (see the back-ends),
so it works even when no worker is free to pick up a job.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from ledgerlink.jobs.registry import JobContext, RetryPolicy, tasks

log = structlog.get_logger("ledgerlink.jobs")

KEEP_FINISHED = timedelta(days=14)


@tasks.task("jobs.prune", retry=RetryPolicy(max_attempts=3, base_delay=60.0))
def prune(ctx: JobContext, *, keep_days: float = KEEP_FINISHED.days) -> None:
    """Delete jobs that finished more than ``keep_days`` ago (succeeded or failed)."""
    older_than = timedelta(days=keep_days)
    if ctx.settings.job_backend == "procrastinate":
        from ledgerlink.jobs.procrastinate_backend import prune_finished

        prune_finished(ctx.db, older_than)
    else:
        from ledgerlink.jobs.embedded import prune_finished as prune_embedded

        deleted = prune_embedded(ctx.db, older_than)
        log.info("jobs.pruned", deleted=deleted, keep_days=keep_days)


# Daily, off the hour so it does not coincide with everyone's midnight jobs.
tasks.periodic("jobs.prune.daily", "17 3 * * *", task="jobs.prune")


class AuditChainBroken(RuntimeError):
    """The audit chain failed verification; the message names the first bad entry."""


@tasks.task("audit.verify", retry=RetryPolicy(max_attempts=1, base_delay=60.0))
def verify_audit_chain(ctx: JobContext) -> None:
    """Re-check the whole audit chain, so tampering is noticed within a day even if nobody
    runs ``ledgerlink audit verify``. A broken chain fails the job, which the dashboard
    shows as a failed job with the entry to investigate."""
    from ledgerlink.store import audit

    with ctx.db.read() as session:
        report = audit.verify(session)
    if not report.ok:
        log.error("audit.chain_broken", problem=report.problem)
        raise AuditChainBroken(report.problem)
    log.info("audit.chain_verified", entries=report.entries, head=report.head_hash)


tasks.periodic("audit.verify.daily", "43 2 * * *", task="audit.verify")
