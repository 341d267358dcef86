"""The job that reads new invoices and asks for their payment, every few seconds.

``invoice_requests.run`` ticks every :data:`TICK_SECONDS` on both job back-ends (a
periodic schedule with a seconds field, as ``payments.process`` does; every tick runs
once however many workers run). One run reads each ledger's new invoices from its mark,
then works every due request (pay-link e-mails, autopay charges whose due date has come,
declines' follow-ups). A worker killed mid-run leaves its claims to lapse after
``payments_lease_seconds``; the next run takes them up as :mod:`.states` describes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from ledgerlink.invoice_requests.detection import detect_new_invoices
from ledgerlink.invoice_requests.requesting import work_due
from ledgerlink.jobs.registry import JobContext, RetryPolicy, tasks
from ledgerlink.runtime import Runtime

log = structlog.get_logger("ledgerlink.invoice_requests")

RUN = "invoice_requests.run"
#: How often new invoices are looked for: one read of each ledger's new invoices (a
#: single SBC request when nothing changed, well inside its rate budget).
TICK_SECONDS = 15


async def run_once(runtime: Runtime) -> dict[str, int]:
    """Read new invoices, then ask for payment of what is due; counts for the log."""
    found = await detect_new_invoices(runtime)
    counts = dict(await work_due(runtime))
    if found:
        counts["found"] = found
    return counts


@tasks.task(RUN, retry=RetryPolicy(max_attempts=2, base_delay=5.0, max_delay=30.0))
def run_task(ctx: JobContext, **_: Any) -> None:
    runtime = Runtime.for_job(ctx)
    counts = asyncio.run(run_once(runtime))
    if counts:
        log.info("invoice_requests.ran", **counts)


tasks.periodic("invoice_requests.tick", f"* * * * * */{TICK_SECONDS}", task=RUN)
