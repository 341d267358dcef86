"""Scheduled audit chain checks, and the alert when one fails.

Every quarter of an hour an incremental check (only the entries written since the newest
signed checkpoint), every night a full one; an administrator can also ask for a full
check from the portal or the API, which enqueues the same task. A failed check is
recorded (the audit page and the dashboard show it), logged at error level, e-mailed
once through the e-mail connection when alerts are on, and fails the job.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog

from ledgerlink.jobs.registry import JobContext, RetryPolicy, tasks
from ledgerlink.payments import notify
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit_checks
from ledgerlink.store.audit_models import AuditCheckState
from ledgerlink.store.payment_models import NotificationLog

log = structlog.get_logger("ledgerlink.audit")

TASK = "audit.verify"
FULL_DEDUP_KEY = "audit.verify.full"
SCHEDULER = "system:scheduler"


class AuditChainBroken(RuntimeError):
    """The audit chain failed verification; the message names the first bad entry."""


class FullCheckRefused(Exception):
    """A full check asked for by hand cannot start now; ``refusal`` says why."""

    def __init__(self, refusal: audit_checks.FullRefusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


def check_recent(runtime: Runtime, by: str) -> audit_checks.AuditCheck:
    """The check anyone may ask for (portal, API): the entries written since the newest
    signed checkpoint, at most :data:`audit_checks.INCREMENTAL_BUDGET` of them per call."""
    return audit_checks.check(
        runtime.settings,
        runtime.db,
        runtime.vault,
        kind="incremental",
        checked_by=by,
        max_rows=audit_checks.INCREMENTAL_BUDGET,
    )


def request_full_check(runtime: Runtime, by: str, now: datetime) -> int:
    """Queue a full re-verification asked for by an administrator (portal or API): one at
    a time, not again within a minute of the last. The job id, or :class:`FullCheckRefused`.
    """
    with runtime.db.transaction() as session:
        refusal = audit_checks.refuse_full(session, now)
        if refusal is None:
            job_id = runtime.jobs.enqueue(
                session, TASK, {"full": True, "by": by}, dedup_key=FULL_DEDUP_KEY
            )
            if job_id is not None:
                return int(job_id)
            refusal = audit_checks.FullRefusal(
                409,
                "A full verification is queued",
                "A full verification is already queued; its result will appear on the Audit page.",
            )
    raise FullCheckRefused(refusal)


@tasks.task(TASK, retry=RetryPolicy(max_attempts=1, base_delay=60.0))
def verify_audit_chain(ctx: JobContext, *, full: bool = False, by: str = SCHEDULER) -> None:
    """Check the chain against its signed checkpoints (``full``: from the first entry)."""
    runtime = Runtime.for_job(ctx)
    now = datetime.now(UTC)
    if full:
        if not audit_checks.claim_full(ctx.db, now):
            log.info("audit.full_check_already_running")
            return
        try:
            result = audit_checks.check(
                ctx.settings, ctx.db, runtime.vault, kind="full", checked_by=by, now=now
            )
        finally:
            audit_checks.release_full(ctx.db)
    else:
        result = audit_checks.check(
            ctx.settings, ctx.db, runtime.vault, kind="incremental", checked_by=by, now=now
        )
    if result.ok:
        return
    alert(runtime, result)
    raise AuditChainBroken(result.problem)


def alert(runtime: Runtime, result: audit_checks.AuditCheck) -> None:
    """E-mail a failed check to the e-mail connection's recipients, once per problem."""
    with runtime.db.read() as session:
        connection = notify.smtp_connection(session)
        state = session.get(AuditCheckState, result.kind)
        already = None if state is None else state.alerted_problem
    if connection is None or not connection.settings.get("alerts", True):
        return
    if already == result.problem:
        return
    mail = notify.Mail(
        "alert",
        "ledgerlink: the audit log failed verification",
        f"The {result.kind} check of the audit log at {result.checked_at:%Y-%m-%d %H:%M} UTC "
        f"found a problem:\n\n{result.problem}\n\nThe Audit page of the portal shows the "
        "latest result; `ledgerlink audit verify` re-checks the whole chain.",
    )
    error: str | None = None
    try:
        asyncio.run(notify.send(runtime, connection, mail))
    except notify.MailFailed as exc:
        error = str(exc)
        log.warning("audit.alert_not_sent", error=error)
    with runtime.db.transaction() as session:
        session.add(
            NotificationLog(
                kind=mail.kind,
                subject=mail.subject,
                recipients=", ".join(connection.settings.get("recipients") or []),
                ok=error is None,
                error=error,
            )
        )
        if error is None:
            row = session.get(AuditCheckState, result.kind)
            if row is not None:
                row.alerted_problem = result.problem


tasks.periodic("audit.verify.quarter-hourly", "*/15 * * * *", task=TASK)
tasks.periodic("audit.verify.daily", "43 2 * * *", task=TASK, args={"full": True})
