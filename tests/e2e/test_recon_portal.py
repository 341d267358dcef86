"""Reconciliation in a real browser: an admin imports the bank's statement, sees the
breaks, posts the missing receipt of a sale the payments path never saw (Sage 500 then
holds it exactly once), explains what is left and closes the period."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from ledgerlink.sandbox.statements import Anomalies
from ledgerlink.settings import Settings
from tests.support.cli import cli
from tests.support.payments import profiles, sage500_world
from tests.support.recon_sandbox import statement_of_deposits
from tests.support.server import running_server, running_worker, server_env

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-passphrase"


def test_an_admin_reconciles_posts_the_missing_receipt_and_closes_the_period(
    page, settings: Settings, tmp_path: Path
) -> None:
    env = server_env(settings)
    # No polling: the sale below stays unseen by the payments path until reconciliation.
    with sage500_world(settings, tmp_path, paytrace_settings={"polling": False}) as world:
        cli(
            ["user", "create", "--email", "fin@example.org", "--role", "admin", "--password-stdin"],
            env,
            stdin=PASSWORD + "\n",
        )
        customer = next(c for c in profiles(world) if world.open_invoices(int(c[1:])))
        invoice = world.open_invoices(int(customer[1:]))[0]
        amount = f"{invoice['Balance']:.2f}"
        sale = world.pay(customer, amount, str(invoice["TranID"]).strip())
        world.settle()
        statement = tmp_path / "bank.bai2"
        statement.write_bytes(
            statement_of_deposits(world, "bai2", Anomalies(unknown_credits=(4200,)))
        )
        with contextlib.ExitStack() as stack:
            base = stack.enter_context(running_server(env, tmp_path / "server.log"))
            if settings.resolved_database_url.startswith("postgresql"):
                stack.enter_context(running_worker(env, tmp_path / "worker.log"))
            page.goto(f"{base}/recon")
            page.get_by_label("E-mail").fill("fin@example.org")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}/recon/*")

            page.set_input_files("#statement", str(statement))
            page.get_by_test_id("import-statement").click()
            page.wait_for_url("**notice=*")
            assert "Imported statement" in page.get_by_test_id("recon-notice").inner_text()
            page.get_by_test_id("run-now").click()
            page.wait_for_url("**notice=*")
            assert "Run " in page.get_by_test_id("recon-notice").inner_text()

            missing = page.locator(f"[data-break='missing_receipt:{sale}']")
            assert missing.count() == 1
            assert page.locator("[data-type='unknown_credit']").count() == 1
            missing.get_by_test_id("post-receipt").click()
            page.wait_for_url("**notice=*")
            assert "now holds it" in page.get_by_test_id("recon-notice").inner_text()
            assert page.locator(f"[data-break='missing_receipt:{sale}']").count() == 0
            held = [p for p in world.erp_payments() if sale in str(p.get("TranCmnt") or "")]
            assert len(held) == 1
            assert world.invoice(str(invoice["TranID"]).strip())["Balance"] == 0

            for _ in range(50):  # explain what is left in this period, one by one
                rows = page.get_by_test_id("break")
                if rows.count() == 0:
                    break
                rows.first.get_by_test_id("explain-reason").fill("checked with the bank")
                rows.first.get_by_test_id("explain").click()
                page.wait_for_url("**notice=*")
            assert page.get_by_test_id("no-breaks").count() == 1
            page.get_by_test_id("close-period").click()
            page.wait_for_url("**notice=*")
            assert (
                "closed and signed off by fin@example.org"
                in page.get_by_test_id("recon-notice").inner_text()
            )
            assert "closed" in page.get_by_test_id("period-status").inner_text()
        held = [p for p in world.erp_payments() if sale in str(p.get("TranCmnt") or "")]
        assert len(held) == 1
