"""The job that settles pay-link charges and card-link uses a crash left without an
outcome, every minute, so finance is not waiting for the payer to come back.

``paylinks.settle_lapsed`` asks PayTrace about each claim older than the lease
(``payments_lease_seconds``) as :mod:`ledgerlink.payments.lapsed_claims` describes: a
pay-link charge left ``sending`` is recorded (and its sale posted) or given back; a card
link's use left claimed is done or given back. Every tick runs once however many workers
run; a claim it could not settle (PayTrace not answering) is asked about at the next.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from ledgerlink.jobs.registry import JobContext, RetryPolicy, tasks
from ledgerlink.paylinks.capture import settle_lapsed_uses
from ledgerlink.paylinks.paying import settle_lapsed_charges
from ledgerlink.runtime import Runtime

log = structlog.get_logger("ledgerlink.paylinks")

SETTLE = "paylinks.settle_lapsed"


async def settle_once(runtime: Runtime) -> dict[str, int]:
    """One pass over the lapsed claims; counts by what became of them, for the log."""
    charges = await settle_lapsed_charges(runtime)
    uses = await settle_lapsed_uses(runtime)
    return {
        **{f"charge_{outcome}": n for outcome, n in charges.items()},
        **{f"card_link_{outcome}": n for outcome, n in uses.items()},
    }


@tasks.task(SETTLE, retry=RetryPolicy(max_attempts=1))
def settle_task(ctx: JobContext, **_: Any) -> None:
    counts = asyncio.run(settle_once(Runtime.for_job(ctx)))
    if counts:
        log.info("paylinks.settled_lapsed", **counts)


tasks.periodic("paylinks.settle_lapsed.tick", "* * * * *", task=SETTLE)
