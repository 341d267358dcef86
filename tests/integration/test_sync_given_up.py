"""A sync run whose job fails for good (here: its worker died under it once too often)
ends "failed" with why, instead of showing "running" for ever; each earlier death of
its worker only sent it round again."""

from __future__ import annotations

import pytest

from ledgerlink.identity.principal import cli_principal
from ledgerlink.jobs.registry import MAX_STALLS, load_task_modules
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import SyncRun
from ledgerlink.sync import starting
from tests.support.job_tasks import leave_as_a_killed_worker_would, worker_thread
from tests.support.waiting import wait_until


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    settings.job_lease_seconds = 2.0
    settings.worker_heartbeat_seconds = 0.5
    load_task_modules(settings)
    made = Runtime(settings)
    upgrade(made.db)
    return made


def test_a_sync_whose_worker_keeps_dying_ends_failed_saying_why(
    runtime: Runtime, backend: str
) -> None:
    with runtime.db.transaction() as session:
        ledger = Connection(kind="sbc", name="Sage Business Cloud", is_active=True)
        session.add(ledger)
        session.flush()
        run = starting.start(session, runtime.jobs, cli_principal(), ledger.id, ["member_details"])
        run_id, job_id = run.id, run.job_id
    assert job_id is not None
    leave_as_a_killed_worker_would(
        runtime.db, backend, job_id, starting.TASK, earlier_stalls=MAX_STALLS - 1
    )
    with runtime.db.transaction() as session:  # as its last run left it
        left = session.get(SyncRun, run_id)
        assert left is not None
        left.status = "running"

    with worker_thread(runtime.settings):
        wait_until(
            lambda: (job := runtime.jobs.get(job_id)) is not None and job.status == "failed",
            timeout=20,
            what="the job to fail for good",
        )
        ended = wait_until(
            lambda: (r := _run(runtime, run_id)).status != "running" and r,
            timeout=10,
            what="the run to end",
        )
    assert ended.status == "failed"
    assert ended.finished_at is not None
    assert ended.error is not None
    assert "killed or hung" in ended.error
    assert "Start the sync again" in ended.error


def _run(runtime: Runtime, run_id: int) -> SyncRun:
    with runtime.db.read() as session:
        found = session.get(SyncRun, run_id)
        assert found is not None
        session.expunge(found)
        return found
