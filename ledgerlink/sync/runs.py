"""Sync runs: start, execute page by page with checkpoints, cancel, plan and apply.

A run is a row (``sync_runs``) created with its job in one transaction
(:mod:`ledgerlink.sync.starting`); :mod:`ledgerlink.sync.execution` works through it,
and :mod:`ledgerlink.sync.plan` types what it records and resumes from. This module is
the one callers import, and it registers the job.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ledgerlink.identity.principal import job_principal
from ledgerlink.jobs.registry import JobContext, RetryPolicy, tasks
from ledgerlink.runtime import Runtime
from ledgerlink.store.db import Database
from ledgerlink.sync.execution import (
    PAGE,
    Execution,
    GatewayOpener,
    Progress,
    ProgressCallback,
    execute,
    execute_for,
)
from ledgerlink.sync.starting import (
    ACTIVE,
    TASK,
    SettingsInvalid,
    SyncError,
    SyncRunNotFound,
    give_up,
    ledger_connection,
    policies_of,
    request_cancel,
    save_settings,
    settings_for,
    start,
    start_follow_up,
)


def _given_up(db: Database, args: dict[str, Any], error: str) -> None:
    with db.transaction() as session:
        give_up(session, int(args["run_id"]), error)


@tasks.task(
    TASK,
    retry=RetryPolicy(max_attempts=5, base_delay=10.0, max_delay=300.0),
    resumable=True,  # page by page, each page's checkpoint committed with it
    on_given_up=_given_up,
)
def sync_task(ctx: JobContext, *, run_id: int, actor: str) -> None:
    """The job: execute the run (resuming if interrupted)."""
    asyncio.run(
        execute_for(
            Runtime.for_job(ctx), run_id, job_principal(actor), should_stop=ctx.stopping.is_set
        )
    )


__all__ = [
    "ACTIVE",
    "PAGE",
    "TASK",
    "Execution",
    "GatewayOpener",
    "Progress",
    "ProgressCallback",
    "SettingsInvalid",
    "SyncError",
    "SyncRunNotFound",
    "execute",
    "execute_for",
    "ledger_connection",
    "policies_of",
    "request_cancel",
    "save_settings",
    "settings_for",
    "start",
    "start_follow_up",
    "sync_task",
]
