"""Sync Now in a real browser: the progress bar moves to 100% from server-sent events and
the run appears in the sync log, against the SBC simulator."""

from __future__ import annotations

import asyncio
import contextlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from ledgerlink import demo
from ledgerlink.connectors.factory import ledger_for
from ledgerlink.identity.principal import cli_principal
from ledgerlink.members import linking, registry
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.settings import Settings
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.models import Connection
from ledgerlink.sync import realtime_outbox
from tests.support.cli import cli
from tests.support.sbc import connect_ledgerlink, running_sbc
from tests.support.server import running_server, running_worker, server_env

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-passphrase"
MEMBERS = 60


def test_sync_now_shows_progress_to_100_and_the_log_entry(
    page, settings: Settings, tmp_path: Path
) -> None:
    env = {**server_env(settings), "LEDGERLINK_SYNC_PAGE_SIZE": "10"}
    cli(
        ["user", "create", "--email", "ops@example.org", "--role", "operator", "--password-stdin"],
        env,
        stdin=PASSWORD + "\n",
    )
    runtime = Runtime(settings)
    with runtime.db.transaction() as session:
        demo.ensure_members(session, count=MEMBERS)
    me = cli_principal()
    with running_sbc(tmp_path / "sbc", SbcConfig(rate_limit_per_minute=0, seed_people=MEMBERS)) as (
        sbc_url,
        _,
    ):
        connection_id = connect_ledgerlink(runtime, sbc_url)
        with runtime.db.read() as session:
            connection = session.get(Connection, connection_id)
            session.expunge(connection)

        async def link_all() -> None:
            async with ledger_for(runtime, connection) as ledger:  # type: ignore[arg-type, attr-defined]
                for n in range(1, MEMBERS + 1):
                    await linking.create_and_link(
                        runtime.db,
                        me,
                        ledger,
                        f"M{n:05d}",
                        connection_id,
                        force=True,
                        mappings=MappingRepository(None),
                    )

        # Playwright's event loop owns this thread: run ours in another one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, link_all()).result()
        with runtime.db.transaction() as session:
            # this connection's changes wait for Sync Now (real-time writing off, as an
            # administrator may choose), so the run has M00002's edit to show
            realtime_outbox.set_outbound(session, me, connection_id, enabled=False)
            current = registry.load_member(session, registry.get_member(session, "M00002"))
            registry.update_member(
                session, me, "M00002", replace(current, email="synced.now@example.org")
            )
        runtime.db.dispose()

        with contextlib.ExitStack() as stack:
            base = stack.enter_context(running_server(env, tmp_path / "server.log"))
            if settings.resolved_database_url.startswith("postgresql"):
                stack.enter_context(running_worker(env, tmp_path / "worker.log"))
            page.goto(f"{base}/sync")
            page.get_by_label("E-mail").fill("ops@example.org")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}/sync")

            page.get_by_role("button", name="Sync Now").click()
            page.wait_for_url(f"{base}/sync/runs/*")
            # every data set the settings choose: card profiles cannot run here (no PayTrace
            # connection), so the run says it finished with that one failed record
            finished = (
                "document.querySelector('[data-testid=sync-status]').innerText"
                ".startsWith('finished')"
            )
            page.wait_for_function(f"() => {finished}", timeout=60_000)
            progress = page.get_by_test_id("sync-progress")
            assert progress.locator("progress").get_attribute("value") == "100"
            counted = re.search(r"(\d+) of (\d+) records", progress.inner_text())
            assert counted is not None
            assert counted.group(1) == counted.group(2)
            assert int(counted.group(1)) >= MEMBERS  # members, then history and balances
            assert page.get_by_test_id("sync-status").inner_text() == (
                "finished with 1 failed record"
            )
            records = page.get_by_test_id("sync-record").all_inner_texts()
            assert any("M00002" in r and "synced.now@example.org" in r for r in records)

            page.get_by_role("navigation", name="Main").get_by_role("link", name="Sync").click()
            latest = page.get_by_test_id("sync-runs").locator("tbody tr").first.inner_text()
            assert "finished" in latest
            assert "manual" in latest
