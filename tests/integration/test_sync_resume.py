"""A sync killed with SIGKILL in the middle resumes where it stopped: every member is
written once, nothing is recorded twice, and Sage holds no extra contact."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ledgerlink import demo
from ledgerlink.connectors.factory import ledger_for
from ledgerlink.identity.principal import cli_principal
from ledgerlink.members import registry
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.faults import FaultInjector, FaultPlan
from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.settings import Settings
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import SyncRecord, SyncRun
from ledgerlink.sync.plan import Checkpoint
from tests.support.cli import cli
from tests.support.ledger_links import link_members
from tests.support.sbc import SbcClient, connect_ledgerlink, running_sbc
from tests.support.server import run_cli, server_env
from tests.support.waiting import wait_until

ME = cli_principal()
MEMBERS = 450  # five pages of 100 (LEDGERLINK_SYNC_PAGE_SIZE below)


@pytest.mark.slow  # a sync process SIGKILLed mid-run, 450 members
def test_a_killed_sync_resumes_without_duplicates(settings: Settings, tmp_path: Path) -> None:
    from ledgerlink.store.migrate import upgrade

    runtime = Runtime(settings)
    upgrade(runtime.db)
    with runtime.db.transaction() as session:
        demo.ensure_members(session, count=MEMBERS)
    injector = FaultInjector()
    config = SbcConfig(rate_limit_per_minute=0, seed_people=MEMBERS)
    with running_sbc(tmp_path / "sbc", config, injector) as (base_url, used):
        connection_id = connect_ledgerlink(runtime, base_url)
        with runtime.db.read() as session:
            connection = session.get(Connection, connection_id)
            session.expunge(connection)

        async def link_all() -> None:
            async with ledger_for(runtime, connection) as ledger:  # type: ignore[arg-type, attr-defined]
                numbers = [f"M{n:05d}" for n in range(1, MEMBERS + 1)]
                await link_members(runtime.db, ledger, connection_id, numbers)

        asyncio.run(link_all())
        env = {**server_env(settings), "LEDGERLINK_SYNC_PAGE_SIZE": "100"}
        cli(["sync", "run", "--data-set", "member_details"], env)  # agree on everything first
        with runtime.db.transaction() as session:
            for n in range(1, MEMBERS + 1):
                number = f"M{n:05d}"
                current = registry.load_member(session, registry.get_member(session, number))
                registry.update_member(
                    session, ME, number, replace(current, email=f"moved{n}@example.org")
                )
        sbc = SbcClient(base_url, used).connect()
        contacts_before = sbc.ok("/contacts")["$total"]

        injector.replace(FaultPlan(latency_ms=15, exempt_paths=injector.plan.exempt_paths))
        process = subprocess.Popen(
            [sys.executable, "-m", "ledgerlink.cli", "sync", "run", "--data-set", "member_details"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def first_page_committed() -> bool:
            with runtime.db.read() as session:
                run = session.scalars(select(SyncRun).order_by(SyncRun.id.desc())).first()
                # the page's commit (its checkpoint), not the bar: the bar moves as each
                # ledger write returns, before the page's records are committed
                return (
                    run is not None
                    and run.status == "running"
                    and Checkpoint.from_json(run.checkpoint).resume_after("member_details") > 0
                )

        wait_until(first_page_committed, timeout=60, what="the sync's first page committed")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        injector.replace(FaultPlan(exempt_paths=injector.plan.exempt_paths))

        with runtime.db.read() as session:
            killed = session.scalars(select(SyncRun).order_by(SyncRun.id.desc())).first()
            assert killed is not None
            assert killed.status == "running"
            assert 100 <= killed.done < MEMBERS
            run_id = killed.id
        run_cli(["sync", "run", "--resume", str(run_id)], env)

        with runtime.db.read() as session:
            finished = session.get(SyncRun, run_id)
            assert finished is not None
            assert finished.status == "finished"
            assert finished.done == MEMBERS
            per_member = session.execute(
                select(SyncRecord.record_key, func.count())
                .where(SyncRecord.run_id == run_id)
                .group_by(SyncRecord.record_key)
            ).all()
        assert len(per_member) == MEMBERS
        assert {count for _, count in per_member} == {1}  # nothing recorded twice
        contacts = sbc.all_items("/contacts", items_per_page=200, attributes="reference,email")
        assert len(contacts) == contacts_before  # no extra contact
        by_reference = {c["reference"]: c["email"] for c in contacts}
        assert all(
            by_reference[f"M{n:05d}"] == f"moved{n}@example.org" for n in range(1, MEMBERS + 1)
        )
        sbc.close()
    runtime.db.dispose()
