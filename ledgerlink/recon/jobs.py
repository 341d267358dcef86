"""When reconciliation runs by itself: after a settlement batch is polled, and daily.

* ``recon.after_batches`` ticks every minute: a scope whose PayTrace connection's poller
  has seen a settlement batch the scope has not read yet is run (trigger ``batch_poll``),
  so a batch is reconciled within a minute of being polled — without the poller knowing
  reconciliation exists.
* ``recon.daily`` runs every scope at 03:17 UTC with a full read (trigger ``schedule``),
  which also catches a ledger payment back-dated behind the receipts cursor.
* ``recon.run`` runs one scope when asked (the API's ``wait=false``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy import select

from ledgerlink.identity.principal import Principal, job_principal, system_principal
from ledgerlink.jobs.registry import JobContext, RetryPolicy, tasks
from ledgerlink.recon.runs import default_matcher, run_scope
from ledgerlink.recon.scopes import ensure_default_scopes
from ledgerlink.runtime import Runtime
from ledgerlink.store.payment_models import PaymentPollState
from ledgerlink.store.recon_models import ReconScope, ReconSideState

log = structlog.get_logger("ledgerlink.recon.jobs")

RUN = "recon.run"
AFTER_BATCHES = "recon.after_batches"
DAILY = "recon.daily"


def scopes_with_new_batches(db: Any) -> list[int]:
    """Scopes whose gateway's poller has seen batches this scope has not read."""
    due = []
    with db.transaction() as session:
        for scope in ensure_default_scopes(session, actor="recon"):
            poll = session.get(PaymentPollState, scope.gateway_connection_id)
            seen = set((poll.batches_seen or {}) if poll is not None else {})
            if not seen:
                continue
            state = session.get(ReconSideState, (scope.id, "batches"))
            known = set(((state.state or {}).get("known") or []) if state is not None else [])
            if seen - known:
                due.append(scope.id)
    return due


async def run_all(
    runtime: Any, scope_ids: list[int], principal: Principal, *, trigger: str, full: bool
) -> None:
    matcher = default_matcher(runtime.db)
    for scope_id in scope_ids:
        try:
            await run_scope(
                runtime, scope_id, principal, trigger=trigger, matcher=matcher, full=full
            )
        except Exception:  # one scope's failure (kept on its run) must not stop the others
            log.exception("recon.scope_failed", scope_id=scope_id, trigger=trigger)


@tasks.task(RUN, retry=RetryPolicy(max_attempts=2, base_delay=30.0, max_delay=120.0))
def run_task(
    ctx: JobContext, scope_id: int, actor: str = "recon", trigger: str = "api", **_: Any
) -> None:
    runtime = Runtime.for_job(ctx)
    asyncio.run(
        run_scope(
            runtime,
            int(scope_id),
            job_principal(actor),
            trigger=trigger,
            matcher=default_matcher(runtime.db),
        )
    )


@tasks.task(AFTER_BATCHES, retry=RetryPolicy(max_attempts=1))
def after_batches_task(ctx: JobContext, **_: Any) -> None:
    runtime = Runtime.for_job(ctx)
    due = scopes_with_new_batches(runtime.db)
    if due:
        asyncio.run(
            run_all(
                runtime,
                due,
                system_principal("recon.after_batches"),
                trigger="batch_poll",
                full=False,
            )
        )


@tasks.task(DAILY, retry=RetryPolicy(max_attempts=2, base_delay=300.0, max_delay=900.0))
def daily_task(ctx: JobContext, **_: Any) -> None:
    runtime = Runtime.for_job(ctx)
    with runtime.db.transaction() as session:
        ensure_default_scopes(session, actor="recon.daily")
        scope_ids = list(session.scalars(select(ReconScope.id).order_by(ReconScope.id)))
    asyncio.run(
        run_all(runtime, scope_ids, system_principal("recon.daily"), trigger="schedule", full=True)
    )


tasks.periodic("recon.after_batches.minutely", "* * * * *", task=AFTER_BATCHES)
tasks.periodic("recon.daily", "17 3 * * *", task=DAILY)

__all__ = ["AFTER_BATCHES", "DAILY", "RUN", "run_all", "scopes_with_new_batches"]
