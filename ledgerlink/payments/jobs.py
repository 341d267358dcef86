"""The payment jobs: drain the inbox (post what arrived) and poll PayTrace.

``payments.process`` is enqueued with the events that cause it (the inbound endpoints
and the poller add it in the transaction that stores the events) and ticks every ten
seconds besides, for deferred events and anything a crash left behind. One drain claims
events in batches, round-robin between integration pairs, and posts up to
``payments_concurrency`` of each pair's at once (:mod:`ledgerlink.payments.fairness`): a
pair whose ledger is slow or failing holds only its own budget. Several drains (workers)
share the inbox safely, each event being claimed by one. The job back-ends need nothing
of their own for this: the embedded runner and procrastinate run the same drain.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

import structlog

from ledgerlink.blocking import in_db_thread
from ledgerlink.jobs.registry import JobContext, RetryPolicy, tasks
from ledgerlink.payments import fairness, queue
from ledgerlink.payments.earlier_charges import settle_lapsed_operator_charges
from ledgerlink.payments.enqueue import POLL, PROCESS, request_processing
from ledgerlink.payments.poller import poll_due
from ledgerlink.payments.posting import PaymentProcessor
from ledgerlink.runtime import Runtime
from ledgerlink.store.group_commit import GroupCommit

log = structlog.get_logger("ledgerlink.payments")

#: A drain stays this long for new events before ending (fewer job starts under load).
IDLE_SECONDS = 3.0
#: and hands over after this long, so other jobs get the worker too.
MAX_DRAIN_SECONDS = 120.0
#: How long the drain waits for a payment in hand to finish before looking again.
CLAIM_EVERY_SECONDS = 0.05
#: While every pair in hand is busy, other pairs' events are looked for this often (each
#: look is a write transaction, the inbound endpoints' competition on SQLite).
OTHER_PAIRS_EVERY_SECONDS = 0.2


async def drain(
    runtime: Runtime,
    *,
    idle_seconds: float = IDLE_SECONDS,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, int]:
    """Process every due event; returns counts by the status events ended in. Stops
    claiming when ``should_stop()`` turns true (the runner is stopping), finishing the
    events in hand; the next drain takes the rest."""
    settings = runtime.settings
    commits: GroupCommit[Any] = GroupCommit(runtime.db, max_batch=64)
    processor = PaymentProcessor(runtime, commits=commits)
    budgets = fairness.PairBudgets(limit=settings.payments_concurrency)
    counts: dict[str, int] = {}
    started = time.monotonic()
    idle_since: float | None = None
    last_claim = -1e9

    async def one(event: queue.ClaimedEvent) -> None:
        try:
            async with budgets.gate(event.connection_id):
                try:
                    status = await processor.handle(event)
                except Exception:  # one bad event must not stop the others; its lease lapses
                    log.exception("payments.event_failed", event_id=event.id)
                    status = "failed"
                counts[status] = counts.get(status, 0) + 1
        finally:
            budgets.done(event.connection_id)

    in_flight: set[asyncio.Task[None]] = set()
    try:
        while time.monotonic() - started < MAX_DRAIN_SECONDS and not should_stop():
            # Claim a batch when a pair runs low (or nothing is in hand), not after every
            # event: each claim is a write transaction. Pairs with nothing in hand are
            # looked for every OTHER_PAIRS_EVERY besides, so a busy pair never hides them.
            claim_now = (
                not in_flight
                or budgets.low()
                or time.monotonic() - last_claim >= OTHER_PAIRS_EVERY_SECONDS
            )
            claimed: list[queue.ClaimedEvent] = []
            if claim_now:
                last_claim = time.monotonic()
                claimed = await in_db_thread(
                    functools.partial(
                        queue.claim, runtime.db, budgets, settings.payments_lease_seconds
                    )
                )
            for event in claimed:
                budgets.taken(event.connection_id)
                task = asyncio.create_task(one(event))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if claimed:
                idle_since = None
                await asyncio.sleep(0)
                continue
            if in_flight:
                await asyncio.wait(
                    in_flight, timeout=CLAIM_EVERY_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                continue
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= idle_seconds:
                break
            await asyncio.sleep(0.05)
        if in_flight:
            await asyncio.gather(*in_flight)
    finally:
        await processor.aclose()
        await commits.aclose()
    return counts


@tasks.task(PROCESS, retry=RetryPolicy(max_attempts=3, base_delay=5.0, max_delay=60.0))
def process_task(ctx: JobContext, **_: Any) -> None:
    runtime = Runtime.for_job(ctx)
    counts = asyncio.run(drain(runtime, should_stop=ctx.stopping.is_set))
    if counts:
        log.info("payments.drained", **counts)
    if queue.has_due(runtime.db):
        # The drain handed over (it ran its time) with work left: the next one starts now,
        # not at the next tick. Its own key, as this job still counts as running.
        with runtime.db.transaction() as session:
            runtime.jobs.enqueue(session, PROCESS, dedup_key=f"{PROCESS}.next")


@tasks.task(POLL, retry=RetryPolicy(max_attempts=2, base_delay=10.0, max_delay=60.0))
def poll_task(ctx: JobContext, **_: Any) -> None:
    runtime = Runtime.for_job(ctx)
    asyncio.run(poll_due(runtime))


#: Operator charges PayTrace did not answer in time (or a crash left sending): settled
#: from PayTrace's record once their lease has lapsed (payments/earlier_charges.py).
SETTLE_CHARGES = "payments.settle_lapsed_charges"


@tasks.task(SETTLE_CHARGES, retry=RetryPolicy(max_attempts=1))
def settle_charges_task(ctx: JobContext, **_: Any) -> None:
    counts = asyncio.run(settle_lapsed_operator_charges(Runtime.for_job(ctx)))
    if counts:
        log.info("payments.settled_lapsed_charges", **counts)


tasks.periodic("payments.process.tick", "* * * * * */10", task=PROCESS)
tasks.periodic("payments.settle_lapsed_charges.tick", "* * * * *", task=SETTLE_CHARGES)
tasks.periodic("payments.poll.tick", "* * * * * */10", task=POLL)

__all__ = ["POLL", "PROCESS", "drain", "request_processing"]
