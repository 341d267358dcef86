"""Reconciliation work that two processes do at once: two runs of one scope (the portal's
after posting a receipt, a worker's after a batch poll) keep their results one after the
other, and two first runs create the pair's scope once. PostgreSQL: SQLite's write
transactions are serial already."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import func, select, text

from ledgerlink.identity.principal import cli_principal
from ledgerlink.recon.runs import RunOutcome, default_matcher, run_scope
from ledgerlink.recon.scopes import ensure_scope
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.models import Connection
from ledgerlink.store.recon_models import ReconRun, ReconScope
from tests.support.recon import AS_OF, seed_scope
from tests.support.waiting import wait_until


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    made = Runtime(settings)
    upgrade(made.db)
    return made


def _run(runtime: Runtime, scope_id: int) -> RunOutcome:
    return asyncio.run(
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


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_run_keeps_its_result_only_once_another_keep_of_the_scope_has_committed(
    runtime: Runtime,
) -> None:
    scope_id = seed_scope(runtime.db)
    _run(runtime, scope_id)  # the result both runs below build on

    outcomes: list[RunOutcome] = []
    with runtime.db.engine.connect() as other:  # another run's keep, under way
        other.execute(
            text("SELECT id FROM recon_scopes WHERE id = :id FOR NO KEY UPDATE"), {"id": scope_id}
        )
        second = threading.Thread(target=lambda: outcomes.append(_run(runtime, scope_id)))
        second.start()

        def started() -> bool:
            with runtime.db.read() as session:
                return session.scalar(select(func.count()).select_from(ReconRun)) == 2

        wait_until(started, timeout=15, what="the second run to start")
        second.join(timeout=1.5)
        assert second.is_alive(), "the run kept its result while another keep held the scope"
        with runtime.db.read() as session:
            statuses = session.scalars(select(ReconRun.status).order_by(ReconRun.id)).all()
        assert statuses == ["finished", "running"]
        other.rollback()  # the other keep ends
        second.join(timeout=30)
    assert not second.is_alive()
    [outcome] = outcomes
    assert outcome.status == "finished"
    with runtime.db.read() as session:
        statuses = session.scalars(select(ReconRun.status).order_by(ReconRun.id)).all()
    assert statuses == ["finished", "finished"]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_transactions_creating_a_pairs_scope_at_once_end_with_one_scope(
    runtime: Runtime,
) -> None:
    """The daily run's job and a run from the portal both create the pair's default scope
    on the first day: the second waits on the first's insert, then takes its scope instead
    of failing with a unique-key error (seen in the soak as a failed ``recon.daily``)."""
    with runtime.db.transaction() as session:
        gateway = Connection(kind="paytrace", name="PayTrace", settings={})
        ledger = Connection(kind="sbc", name="SBC", settings={}, is_active=True)
        session.add_all([gateway, ledger])
        session.flush()
        pair = (gateway.id, ledger.id)

    found: list[int] = []
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with runtime.db.transaction() as session:
                found.append(ensure_scope(session, *pair, actor="portal").id)
        except BaseException as exc:
            errors.append(exc)

    with runtime.db.transaction() as first:
        created = ensure_scope(first, *pair, actor="daily").id
        other = threading.Thread(target=second)
        other.start()

        def waiting_on_the_first() -> bool:
            with runtime.db.read() as session:
                return bool(
                    session.scalar(
                        text(
                            "SELECT COUNT(*) FROM pg_stat_activity "
                            "WHERE wait_event_type = 'Lock' "
                            "AND query LIKE 'INSERT INTO recon_scopes%'"
                        )
                    )
                )

        wait_until(waiting_on_the_first, timeout=15, what="the second insert to wait")
    other.join(timeout=15)
    assert not errors, errors
    assert found == [created]
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ReconScope)) == 1
