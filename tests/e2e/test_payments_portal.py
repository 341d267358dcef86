"""An exception resolved from the portal in a real browser: a card payment for an invoice
number that does not exist is pushed by silent post, lands in the exceptions queue, and
an operator applies it to the right invoice; the job posts it to Sage 500."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from ledgerlink.settings import Settings
from tests.support.cli import cli
from tests.support.payments import profiles, sage500_world
from tests.support.server import running_server, running_worker, server_env
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-passphrase"


def test_an_operator_resolves_a_payment_exception(page, settings: Settings, tmp_path: Path) -> None:
    env = server_env(settings)
    with sage500_world(settings, tmp_path) as world:
        cli(
            [
                "user",
                "create",
                "--email",
                "ops@example.org",
                "--role",
                "operator",
                "--password-stdin",
            ],
            env,
            stdin=PASSWORD + "\n",
        )
        customer = profiles(world)[0]
        invoice = world.open_invoices(int(customer[1:]))[0]
        sale = world.pay(customer, "25.00", "0000009999-IN")
        with contextlib.ExitStack() as stack:
            base = stack.enter_context(running_server(env, tmp_path / "server.log"))
            if settings.resolved_database_url.startswith("postgresql"):
                stack.enter_context(running_worker(env, tmp_path / "worker.log"))
            pushed = httpx.post(
                f"{base}/inbound/paytrace/{world.paytrace_id}/silent-post",
                data={
                    "parmList": f"TRANSACTIONID~{sale}|TRANXTYPE~SALE|ORDERID~0000009999-IN|"
                    f"CUSTID~{customer}|AMOUNT~25.00|RESPONSECODE~101|"
                },
            )
            assert pushed.status_code == 200

            page.goto(f"{base}/payments/exceptions")
            page.get_by_label("E-mail").fill("ops@example.org")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}/payments/exceptions")
            queued = page.locator(f"[data-transaction='{sale}']")
            wait_until(
                lambda: queued.count() or _reloaded(page),
                timeout=60,
                interval=0.5,
                what="the exception row on the Exceptions page",
            )
            assert "Invoice 0000009999-IN is not in Sage 500" in queued.inner_text()

            queued.get_by_label("Invoice number").fill(invoice["TranID"])
            queued.get_by_role("button", name="Apply to this invoice").click()
            page.wait_for_url(f"{base}/payments/exceptions?notice=*")
            assert invoice["TranID"] in page.get_by_role("status").inner_text()

            page.get_by_role("navigation", name="Main").get_by_role("link", name="Payments").click()
            row = page.get_by_test_id("payment-events").locator("tbody tr").first
            wait_until(
                lambda: "posted" in row.inner_text() or _reloaded(page),
                timeout=60,
                interval=0.5,
                what="the payment shown as posted",
            )
            assert f"applied to invoice {invoice['TranID']}" in row.inner_text()
        balance = Decimal(world.invoice(invoice["TranID"])["Balance"])
        assert balance == Decimal(invoice["Balance"]) - Decimal("25.00")


def _reloaded(page) -> bool:  # type: ignore[no-untyped-def]
    """Reload ``page`` for the next look; never what a wait is waiting for."""
    page.reload()
    return False
