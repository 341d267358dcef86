"""Every portal page, signed in as an administrator on a seeded installation, at a desktop
width (1280 px) and a phone's (390 px): the page never scrolls sideways (a wide table
scrolls inside its own box), nothing is logged as a console error, and axe-core finds no
accessibility violation of any impact. A full-page screenshot of each page with a problem
is saved under the test's output directory; with ``LEDGERLINK_SCREENSHOT_DIR`` set, of
every page, there, for a person to look at.

SQLite only: the layout does not depend on the back-end."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ledgerlink import connections
from ledgerlink.demo import ensure_members
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.recon.imports import import_statement
from ledgerlink.recon.runs import default_matcher, run_scope
from ledgerlink.recon.scopes import get_scope
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.member_models import BulkLinkRun, MemberLinkRow, MemberRow
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentEvent
from ledgerlink.store.sync_models import SyncRun
from ledgerlink.tour import progress as tour
from tests.support.recon import OFX, seed_scope
from tests.support.server import running_server, server_env
from tests.support.web import PASSWORD, make_user

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (1280, 390)
HEIGHT = 900

#: The outermost elements reaching past the window's right edge (outside a box that
#: scrolls on its own), to say what overflows.
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .filter(e => !e.closest('.table-scroll'))
  .filter(e => !(e.parentElement && e.parentElement.getBoundingClientRect().right
                 > window.innerWidth + 1))
  .slice(0, 5)
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
            + (typeof e.className === 'string' && e.className ? '.' + e.className : '')
            + ' ' + Math.round(e.getBoundingClientRect().right) + 'px')"""

#: Every rule axe-core runs by default (WCAG A/AA and best practice), any impact.
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
}"""


@pytest.fixture
def backend() -> str:
    """SQLite only (this overrides the back-end parameter): the layout does not depend on
    the back-end, and one run of this test is enough."""
    return "sqlite"


def screenshot_dir(tmp_path: Path) -> Path:
    wanted = os.environ.get("LEDGERLINK_SCREENSHOT_DIR")
    folder = Path(wanted) if wanted else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def first_link(page: Any, pattern: str) -> str:
    """The first link on the page whose path matches ``pattern`` (a seeded row's page)."""
    for href in page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))"):
        if re.fullmatch(pattern, href.split("#")[0]):
            return str(href)
    raise AssertionError(f"no link matching {pattern} on {page.url}")


def portal_pages(page: Any, base: str, recon: str) -> list[str]:
    """Every page of the portal, the ones about one record found through the lists;
    ``recon`` is a reconciliation's page for a period with breaks."""
    fixed = [
        "/",
        "/members",
        "/members/import",
        "/members?without_account=1",
        "/connections",
        "/sync",
        "/payments",
        "/payments/exceptions",
        "/payments/charge",
        "/payments/pay-links",
        "/settings/mappings",
        "/recon",
        "/recon/rules",
        "/audit",
        "/settings",
        "/tour",
    ]
    found: list[str] = []
    page.goto(f"{base}/members")
    member = first_link(page, r"/members/[^/?]+(?<!import)(?<!new)")
    found += [member, f"{member}/edit", f"{member}/card-capture-link", "/members/new"]
    found.append(f"{member}/invoice-requests")
    page.goto(f"{base}/connections")
    hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))")
    found += sorted({h for h in hrefs if re.fullmatch(r"/connections/\d+", h)})
    page.goto(f"{base}/sync")
    found.append(first_link(page, r"/sync/runs/\d+"))
    page.goto(f"{base}/payments")
    found.append(first_link(page, r"/payments/events/\d+"))
    page.goto(f"{base}/settings/mappings")
    found.append(first_link(page, r"/settings/mappings/[^/?]+"))
    page.goto(f"{base}{recon}")
    found.append(recon)
    found.append(first_link(page, r"/recon/\d+/breaks/[^?]+(\?.*)?"))
    found.append(first_link(page, r"/recon/\d+/batches/[^?]+(\?.*)?"))
    found.append("/members/bulk/1")
    return fixed + found


def check_pages(page: Any, base: str, pages: list[str], shots: Path) -> list[str]:
    """Visit each page at both widths; return what is wrong, one line each."""
    axe_source = AXE.read_text()
    # full-page screenshots took 16 of the 56 s of the 64 visits: taken of the pages with a
    # problem, or of every page when a person asked for them
    every_shot = bool(os.environ.get("LEDGERLINK_SCREENSHOT_DIR"))
    errors: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error":
            errors.append(f"{page.url}: {message.text}")

    def uncaught(error: Any) -> None:
        errors.append(f"{page.url}: {error}")

    page.on("console", console)
    page.on("pageerror", uncaught)
    problems: list[str] = []
    started = time.monotonic()
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": HEIGHT})
        for path in pages:
            errors.clear()
            response = page.goto(f"{base}{path}")
            assert response is not None
            where = f"{path} at {width} px"
            if response.status >= 400:
                problems.append(f"{where}: answered {response.status}")
            found = len(problems)
            document, window = page.evaluate(
                "() => [document.documentElement.scrollWidth, window.innerWidth]"
            )
            if document > window:
                problems.append(f"{where}: {document} px wide: {page.evaluate(OVERFLOWING)}")
            page.evaluate(axe_source)
            for violation in page.evaluate(RUN_AXE):
                problems.append(f"{where}: axe {json.dumps(violation)}")
            problems += [f"{where}: console error {e}" for e in errors]
            if every_shot or len(problems) > found:
                name = re.sub(r"[^A-Za-z0-9]+", "-", path.split("?")[0]).strip("-") or "dashboard"
                page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
    page.remove_listener("console", console)
    page.remove_listener("pageerror", uncaught)
    print(f"{len(pages)} pages at {len(WIDTHS)} widths in {time.monotonic() - started:.1f} s")
    return problems


SAGE500 = {"company_id": "SOA", "receipt_gl_account": "1010-00", "import_wait_seconds": 20}
SMTP = {
    "host": "127.0.0.1",
    "port": 2525,
    "security": "none",
    "from_address": "ledgerlink@example.org",
    "recipients": ["finance@example.org"],
    "digest_at": "",
}


def seed(settings: Settings, db: Database) -> int:
    """What a page shows rows of: demo members linked to an SBC customer, a connection of
    every kind, a finished sync run and a bulk link run, posted and failed card payments, a
    reconciliation with breaks (the recon tests' small scope, its statement imported and
    matched); and the guided tour on, as in the demo."""
    scope_id = seed_scope(db)  # adds a PayTrace and an SBC connection
    runtime = Runtime(settings)
    with runtime.db.transaction() as session:
        ensure_members(session, count=30)
        tour.set_enabled(session, cli_principal(), True)  # the tour's panel and callouts too
        for kind, name, kept, secrets in (
            ("sage500", "Sage 500 — Northwind Building Supply", SAGE500, {"database_url": "sqlite:///sage500.sqlite3"}),
            ("smtp", "Finance e-mail", SMTP, {}),
        ):
            connections.create(
                session,
                runtime.vault,
                cli_principal(),
                kind=kind,
                name=name,
                settings=kept,
                secrets=secrets,
            )
        ledger = session.scalars(select(Connection).where(Connection.kind == "sbc")).one()
        for member in session.scalars(select(MemberRow)):  # an account badge on each row
            session.add(
                MemberLinkRow(
                    member_id=member.id,
                    connection_id=ledger.id,
                    system="sbc",
                    customer_id=f"9d1c6a2e-{member.id:04d}",
                    customer_number=f"MEMB-{member.number}",
                    linked_by="fin@example.org",
                )
            )
        session.add_all(
            [
                SyncRun(
                    connection_id=ledger.id,
                    trigger="manual",
                    status="finished",
                    requested_by="fin@example.org",
                ),
                BulkLinkRun(connection_id=ledger.id, requested_by="fin@example.org"),
            ]
        )
        for n, (status, message) in enumerate(
            (("posted", None), ("exception", "No customer account has card profile 8841."))
        ):
            session.add(
                PaymentEvent(
                    source="poller",
                    transaction_id=f"90{n}",
                    kind="sale",
                    dedup_key=f"every-page-{n}",
                    payload={"amount": "75.00", "currency": "USD", "invoice": "INV-1001"},
                    verified=True,
                    status=status,
                    message=message,
                )
            )
        scope = get_scope(session, scope_id)
        import_statement(session, cli_principal(), scope, OFX, "november.ofx")
    try:
        # Playwright's event loop runs on this thread: the matching run gets its own.
        with ThreadPoolExecutor(1) as thread:
            thread.submit(
                asyncio.run,
                run_scope(
                    runtime,
                    scope_id,
                    cli_principal(),
                    trigger="manual",
                    matcher=default_matcher(runtime.db),
                ),
            ).result()
    finally:
        runtime.db.dispose()
    return scope_id


def test_every_portal_page_fits_both_widths_and_passes_axe(
    page: Any, settings: Settings, db: Database, tmp_path: Path
) -> None:
    scope_id = seed(settings, db)
    admin = make_user(db, Role.ADMIN, email="fin@example.org")
    shots = screenshot_dir(tmp_path)
    with running_server(server_env(settings), tmp_path / "server.log") as base:
        problems = check_pages(page, base, ["/login"], shots)
        page.set_viewport_size({"width": WIDTHS[0], "height": HEIGHT})
        page.goto(f"{base}/login")
        page.get_by_label("E-mail").fill(admin.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/")
        pages = portal_pages(page, base, f"/recon/{scope_id}?period=2026-11&status=all")
        problems += check_pages(page, base, pages, shots)
    assert not problems, f"{len(problems)} problem(s); screenshots in {shots}:\n" + "\n".join(
        problems
    )
