"""The jobs that poll the ledgers every few seconds, under either job back-end.

Periodic jobs fire once a minute at best, so a poll chain schedules itself: each poll job,
when it ends, enqueues the next one ``delay`` seconds on (the interval, stretched when the
rate budget needs it) in the same transaction that records the poll. The queue refuses a
second job with a ``dedup_key`` while the first is queued *or running*, so a job cannot
re-enqueue itself under its own key: each link of the chain carries a number, the next
link's key is the next number, and the connection's ``realtime_polls.chain`` says which
number may run. A job whose number is not the current one stands down, so however many
chains were started (a restart, two workers), one polls.

A minutely job (the only periodic one) restarts a chain that died (its worker was killed
between the poll and the hand-over, or the job ran out of attempts): when the next poll is
overdue by more than a minute, it bumps the chain number and enqueues a poll now. It also
marks members in agreement after full runs finished (see
:func:`ledgerlink.sync.realtime_inbound.mark_full_runs`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Final

import structlog
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.jobs.port import JobQueue
from ledgerlink.jobs.registry import JobContext, RetryPolicy, tasks
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.models import Connection
from ledgerlink.store.realtime_inbound_models import RealtimePoll
from ledgerlink.store.types import utcnow
from ledgerlink.sync import poll_budget
from ledgerlink.sync import realtime_inbound as inbound
from ledgerlink.sync.starting import ledger_connection

log = structlog.get_logger("ledgerlink.sync.realtime_inbound")

POLL_TASK: Final = "realtime.inbound.poll"
WATCH_TASK: Final = "realtime.inbound.watch"
#: A chain whose next poll is this late is taken for dead and started again.
GRACE: Final = timedelta(seconds=60)
#: How long a poll under way holds its chain before the watch may start another (a link
#: whose worker died is run again by the queue itself well before that).
POLL_LEASE: Final = timedelta(minutes=5)


def _key(connection_id: int, chain: int) -> str:
    return f"{POLL_TASK}:{connection_id}:{chain}"


def start_chain(
    session: Session, jobs: JobQueue, connection_id: int, *, at: datetime | None = None
) -> int:
    """Make a new chain the one that polls the connection, its first poll at ``at`` (now);
    any older chain's next job stands down when it sees the new number."""
    state = inbound.poll_state(session, connection_id)
    state.chain += 1
    state.next_at = at or utcnow()
    jobs.enqueue(
        session,
        POLL_TASK,
        {"connection_id": connection_id, "chain": state.chain},
        run_at=state.next_at,
        dedup_key=_key(connection_id, state.chain),
    )
    return state.chain


def _hand_over(
    session: Session, jobs: JobQueue, connection_id: int, chain: int, result: inbound.PollResult
) -> None:
    """Record the poll and enqueue the next link, unless another chain took over meanwhile."""
    state = inbound.poll_state(session, connection_id)
    connection = session.get(Connection, connection_id)
    if state.chain != chain or not state.enabled or connection is None:
        return
    if not connection.is_active:  # the minutely watch starts a chain once it is active again
        state.last_outcome = result.outcome[:500]
        return
    per_minute = inbound.rate_limit_of(connection)
    if result.polled:
        state.last_requests = result.requests
    state.effective_seconds = poll_budget.stretched_interval(
        state.interval_seconds, state.last_requests, per_minute
    )
    state.last_outcome = result.outcome[:500]
    state.chain = chain + 1
    state.next_at = utcnow() + timedelta(seconds=state.effective_seconds)
    jobs.enqueue(
        session,
        POLL_TASK,
        {"connection_id": connection_id, "chain": state.chain},
        run_at=state.next_at,
        dedup_key=_key(connection_id, state.chain),
    )


def run_poll(runtime: Runtime, connection_id: int, chain: int) -> inbound.PollResult | None:
    """One link of the chain: poll if this chain is current, then hand over. ``None``: this
    chain stood down (another one polls, or polling was switched off)."""
    with runtime.db.transaction() as session:
        state = session.get(RealtimePoll, connection_id)
        current = state is not None and state.chain == chain and state.enabled
        if state is not None and current:
            # polling: the watch must not take the chain for dead while a long read goes on
            state.next_at = utcnow() + POLL_LEASE
    if not current:
        log.debug("realtime.inbound.stood_down", connection=connection_id, chain=chain)
        return None
    try:
        result = asyncio.run(inbound.poll(runtime, connection_id))
    except Exception as exc:  # the chain goes on; the next poll tries again
        log.warning(
            "realtime.inbound.poll_failed", connection=connection_id, error=str(exc), exc_info=True
        )
        result = inbound.PollResult(
            connection_id, False, f"the last poll failed: {exc}"[:500] or "the last poll failed"
        )
    with runtime.db.transaction() as session:
        _hand_over(session, runtime.jobs, connection_id, chain, result)
    log.info(
        "realtime.inbound.polled",
        connection=connection_id,
        outcome=result.outcome,
        requests=result.requests,
    )
    return result


def watch(session: Session, jobs: JobQueue, now: datetime | None = None) -> list[int]:
    """Start a chain for each polled connection whose chain is missing or dead, and mark
    agreement after finished full runs. Returns the connections whose chain was started."""
    moment = now or utcnow()
    started = []
    for connection_id in inbound.polled_connections(session):
        inbound.mark_full_runs(session, connection_id)
        state = inbound.poll_state(session, connection_id)
        if state.next_at is None or state.next_at < moment - GRACE:
            start_chain(session, jobs, connection_id)
            started.append(connection_id)
    return started


@tasks.task(POLL_TASK, retry=RetryPolicy(max_attempts=2, base_delay=1.0, max_delay=5.0))
def poll_task(ctx: JobContext, *, connection_id: int, chain: int) -> None:
    run_poll(Runtime.for_job(ctx), connection_id, chain)


@tasks.task(WATCH_TASK, retry=RetryPolicy(max_attempts=1))
def watch_task(ctx: JobContext) -> None:
    runtime = Runtime.for_job(ctx)
    with runtime.db.transaction() as session:
        started = watch(session, runtime.jobs)
    if started:
        log.info("realtime.inbound.chains_started", connections=started)


tasks.periodic("realtime.inbound.minutely", "* * * * *", task=WATCH_TASK)


def save_polling(
    session: Session,
    jobs: JobQueue,
    principal: Principal,
    connection_id: int,
    *,
    interval_typed: str,
    enabled: bool,
) -> int:
    """Store the connection's polling settings (audited) and let the new interval apply at
    once: a new chain polls now. Raises ``IntervalInvalid`` naming the field and the fix."""
    interval = poll_budget.parse_interval(interval_typed)
    connection = ledger_connection(session, connection_id)
    state = inbound.poll_state(session, connection_id)
    before = {"enabled": state.enabled, "interval_seconds": state.interval_seconds}
    state.enabled = enabled
    state.interval_seconds = interval
    state.effective_seconds = poll_budget.stretched_interval(
        interval, state.last_requests, inbound.rate_limit_of(connection)
    )
    audit.record(
        session,
        actor=principal.actor,
        action="sync.polling_changed",
        entity_type="connection",
        entity_id=connection_id,
        before=before,
        after={"enabled": enabled, "interval_seconds": interval},
    )
    if enabled:
        start_chain(session, jobs, connection_id)
    return interval
