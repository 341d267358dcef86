"""A payer pays an invoice through a pay link in a real browser: the card is typed into
PayTrace's hosted fields (the sandbox's iframe), the receipt is applied in Sage 500 once,
a double click and a reload change nothing, and the card number typed is nowhere in
ledgerlink's database, its log or its request log."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from ledgerlink.identity.principal import cli_principal
from ledgerlink.paylinks.links import create_link
from ledgerlink.settings import Settings
from tests.support.pay_links import VISA, YEAR, sales_for
from tests.support.payments import sage500_world
from tests.support.server import running_server, server_env
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
#: axe-core's rules on the payer's own page (the card iframe is PayTrace's: not entered).
RUN_AXE = """async () => (await axe.run(document, {iframes: false, resultTypes: ['violations']}))
  .violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"""


def _axe_violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    page.evaluate(AXE.read_text())
    return list(page.evaluate(RUN_AXE))


def _files_holding(root: Path, secret: bytes, *, apart: Path) -> list[str]:
    """Every file under ``root`` (but not under ``apart``) whose bytes contain ``secret``."""
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and apart not in path.parents and secret in path.read_bytes()
    ]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_payer_pays_an_invoice_by_link_in_the_browser_once(
    page, settings: Settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    env = {**server_env(settings), "LEDGERLINK_LOG_LEVEL": "debug"}  # every upstream call
    with sage500_world(settings, tmp_path, people=2) as world:
        invoice = world.open_invoices(1)[0]
        number, due = str(invoice["TranID"]), Decimal(str(invoice["Balance"]))
        with ThreadPoolExecutor(1) as thread:  # Playwright's loop holds the main thread
            link = thread.submit(
                asyncio.run, create_link(world.runtime, cli_principal(), invoice_number=number)
            ).result()
        server_log = tmp_path / "server.log"
        with running_server(env, server_log) as base:
            page.goto(base + link.path)
            assert page.get_by_test_id("amount-due").inner_text().startswith(f"${due:,.2f}")
            assert _axe_violations(page) == []
            fields = page.frame_locator("#pt_hpf_frame")
            fields.locator("#number").fill(VISA)
            fields.locator("#month").fill("11")
            fields.locator("#year").fill(YEAR)
            fields.locator("#csc").fill("999")
            page.locator("#pay-button").dblclick()
            page.wait_for_url("**/receipt/**")
            assert "xxxxxxxxxxxx5439" in page.get_by_test_id("paid-card").inner_text()
            assert [s["customer_id"] for s in sales_for(world, number)] == [""]  # card not kept
            page.reload()
            page.get_by_test_id("receipt").wait_for()
            assert _axe_violations(page) == []

            wait_until(
                lambda: Decimal(str(world.invoice(number)["Balance"])) == 0,
                timeout=60,
                what="the receipt applied to the invoice in Sage 500",
            )
            page.reload()  # the receipt again: nothing more is charged or posted
            page.goto(base + link.path)  # the link itself: nothing left to pay
            assert page.get_by_test_id("link-problem").get_attribute("data-reason") == "paid"
            assert len(sales_for(world, number)) == 1
            assert len(world.erp_payments()) == 1  # one receipt in Sage 500
            assert list(world.staged_posted().values()) == [1]  # imported once

        # The typed card number is nowhere ledgerlink keeps anything: its database (and
        # WAL), var/ (logs, state), the server's log with its request log; the ledger's
        # database neither. (The PayTrace sandbox's own state, under pt/, is PayTrace's.)
        logged = server_log.read_bytes()
        assert b"/v1/transactions/sale/pt_protect" in logged  # its request log is scanned
        assert settings.resolved_database_url.startswith("sqlite")
        assert _files_holding(tmp_path, VISA.encode(), apart=tmp_path / "pt") == []
