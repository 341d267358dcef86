"""*Test connection* in a real browser against a Sage that stopped answering: the page says
it is testing while it waits (the button is disabled), and gives up at the deadline with
the reason in words (issue 19, defect 14)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.faults import FaultInjector, FaultPlan
from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.settings import Settings
from tests.support.cli import cli
from tests.support.sbc import connect_ledgerlink, running_sbc
from tests.support.server import running_server, server_env

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-passphrase"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_test_connection_shows_it_is_testing_and_gives_up_on_a_hung_sage(
    page, settings: Settings, tmp_path: Path
) -> None:
    env = {**server_env(settings), "LEDGERLINK_CONNECTION_TEST_SECONDS": "2"}
    cli(
        ["user", "create", "--email", "ops@example.org", "--role", "operator", "--password-stdin"],
        env,
        stdin=PASSWORD + "\n",
    )
    runtime = Runtime(settings)
    faults = FaultInjector()
    books = SbcConfig(rate_limit_per_minute=0, seed_people=3)
    with running_sbc(tmp_path / "sbc", books, faults) as (sbc_url, _):
        cid = connect_ledgerlink(runtime, sbc_url)
        runtime.db.dispose()
        with running_server(env, tmp_path / "server.log") as base:
            page.goto(f"{base}/connections/{cid}")
            page.get_by_label("E-mail").fill("ops@example.org")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}/connections/{cid}")
            waiting = page.get_by_test_id("checks-waiting")
            expect(waiting).to_have_css("opacity", "0")  # nothing said before it is asked
            faults.replace(FaultPlan(hang_rate=1.0, hang_seconds=3))  # Sage stops answering

            button = page.get_by_role("button", name="Test connection")
            started = time.monotonic()
            button.click()
            expect(waiting).to_have_css("opacity", "1", timeout=1_000)
            assert (
                page.get_by_test_id("checks-waiting")
                .inner_text()
                .startswith("Testing the connection")
            )
            assert button.is_disabled()

            result = page.get_by_test_id("connection-checks")
            result.wait_for(timeout=10_000)
            waited = time.monotonic() - started
            faults.replace(FaultPlan())
            assert "Sage Business Cloud did not answer within 2 s" in result.inner_text()
            assert waited < 4, f"the page waited {waited:.1f} s for a hung Sage"
            expect(waiting).to_have_css("opacity", "0", timeout=1_000)
            assert button.is_enabled()
