"""The Reconciliation pages on a phone: 390 px wide, the page itself never scrolls
sideways; a wide table scrolls inside its own box instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerlink.identity.roles import Role
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from tests.support.recon import OFX, seed_scope
from tests.support.server import running_server, server_env
from tests.support.web import PASSWORD, make_user

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
#: The page's own width against the window's: what makes a phone scroll sideways.
WIDTHS = "() => [document.documentElement.scrollWidth, window.innerWidth]"
#: The outermost elements that reach past the window's right edge (outside a box that
#: scrolls on its own), to say what overflows.
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .filter(e => !e.closest('.table-scroll'))
  .filter(e => !(e.parentElement && e.parentElement.getBoundingClientRect().right
                 > window.innerWidth + 1))
  .slice(0, 5)
  .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')
            + ' ' + Math.round(e.getBoundingClientRect().right) + 'px')"""


def _fits(page, what: str) -> None:  # type: ignore[no-untyped-def]
    document, viewport = page.evaluate(WIDTHS)
    assert viewport == PHONE["width"]
    assert document <= viewport, (
        f"{what} is {document} px wide on a {viewport} px phone: {page.evaluate(OVERFLOWING)}"
    )


def test_the_reconciliation_pages_fit_a_390_px_phone(
    page, settings: Settings, db: Database, tmp_path: Path
) -> None:
    scope_id = seed_scope(db)
    admin = make_user(db, Role.ADMIN, email="fin@example.org")
    statement = tmp_path / "november-statement-from-the-bank.ofx"
    statement.write_bytes(OFX)
    page.set_viewport_size(PHONE)
    with running_server(server_env(settings), tmp_path / "server.log") as base:
        page.goto(f"{base}/recon/{scope_id}?period=2026-11")
        page.get_by_label("E-mail").fill(admin.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/recon/*")
        page.set_input_files("#statement", str(statement))
        page.get_by_test_id("import-statement").click()
        page.wait_for_url("**notice=*")
        page.get_by_test_id("run-now").click()
        page.wait_for_url("**notice=*")
        page.goto(f"{base}/recon/{scope_id}?period=2026-11&status=all")
        assert page.get_by_test_id("break").count() >= 2  # the tables have rows
        _fits(page, "the Reconciliation page")
        breaks = page.get_by_test_id("breaks")
        box = breaks.evaluate("t => [t.scrollWidth, t.parentElement.clientWidth]")
        assert box[1] <= PHONE["width"]  # the table's own box fits; the table may scroll in it

        page.goto(f"{base}/recon/{scope_id}/breaks/missing_receipt:5002")
        _fits(page, "a break's page")
        page.goto(f"{base}/recon/{scope_id}/batches/1001")
        _fits(page, "a batch's page")
        page.goto(f"{base}/recon/rules")
        _fits(page, "the Matching rules page")
