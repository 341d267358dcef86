"""A reconciliation run whose process ended mid-way (SIGKILL, a restart) stays "running"
in the database; the next run of the scope records it as stopped, with why, so the
scope's page does not show it running for good. A run that may still be going (started
within the hour) is left alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from ledgerlink.identity.principal import cli_principal
from ledgerlink.recon.runs import default_matcher, run_scope
from ledgerlink.recon.views import runs
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.recon_models import ReconRun
from ledgerlink.store.types import utcnow
from tests.support.recon import AS_OF, seed_scope


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    made = Runtime(settings)
    upgrade(made.db)
    return made


def _left_running(runtime: Runtime, scope_id: int, minutes_ago: int) -> int:
    """What a process killed in the middle of a run left behind."""
    with runtime.db.transaction() as session:
        run = ReconRun(
            scope_id=scope_id,
            trigger="schedule",
            requested_by="scheduler",
            as_of=AS_OF,
            status="running",
            counts={},
            totals={},
            started_at=utcnow() - timedelta(minutes=minutes_ago),
        )
        session.add(run)
        session.flush()
        return run.id


def test_the_next_run_records_a_run_whose_process_ended_as_stopped(runtime: Runtime) -> None:
    scope_id = seed_scope(runtime.db)
    killed = _left_running(runtime, scope_id, minutes_ago=90)
    maybe_going = _left_running(runtime, scope_id, minutes_ago=5)

    asyncio.run(
        run_scope(
            runtime,
            scope_id,
            cli_principal(),
            trigger="cli",
            matcher=default_matcher(),
            as_of=AS_OF,
            read=False,
        )
    )

    with runtime.db.read() as session:
        shown = {row.id: row for row in runs(session, scope_id)}
        finished = session.scalar(select(ReconRun.finished_at).where(ReconRun.id == killed))
    assert shown[killed].status == "failed"
    assert shown[killed].error is not None
    assert "stopped before it finished" in shown[killed].error
    assert finished is not None
    assert shown[maybe_going].status == "running"
    [latest] = [row for row in shown.values() if row.id not in (killed, maybe_going)]
    assert latest.status == "finished"
