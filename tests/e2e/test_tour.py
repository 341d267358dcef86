"""The guided tour in a real browser, on the demo's data: a demo administrator signs in,
the dashboard lists both scenarios; each step's link opens its page with the step's
callout beside what it is about; Next walks on; the tour and its callouts pass axe-core
and fit a phone; Dismiss tour hides it for good.

SQLite only: the tour does not depend on the back-end."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from ledgerlink import demo
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from tests.e2e.test_every_page import AXE, RUN_AXE
from tests.support.server import running_server, server_env
from tests.support.tour import demo_like

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS = (
    "connect-sbc",
    "find-members",
    "create-and-link",
    "sync",
    "payment-posted",
    "exception-resolved",
    "reconciliation",
)


@pytest.fixture
def backend() -> str:
    """SQLite only (this overrides the back-end parameter)."""
    return "sqlite"


def _callout(page: Any, step: str) -> Any:
    callout = page.locator(f'.tour-callout.tour-shown[data-step="{step}"]')
    callout.wait_for()
    return callout


def _fits_and_passes_axe(page: Any, where: str) -> list[str]:
    problems = []
    document, window = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    if document > window:
        problems.append(f"{where}: {document} px wide in a {window} px window")
    page.evaluate(AXE.read_text())
    problems += [f"{where}: axe {json.dumps(v)}" for v in page.evaluate(RUN_AXE)]
    return problems


def test_a_demo_administrator_follows_the_tour_through_both_scenarios(
    page: Any, settings: Settings, db: Database, tmp_path: Path
) -> None:
    started = time.monotonic()
    demo_like(db)
    page.set_viewport_size({"width": 1280, "height": 900})
    with running_server(server_env(settings), tmp_path / "server.log") as base:
        page.goto(f"{base}/login")
        page.get_by_label("E-mail").fill(demo.USERS[0][0])
        page.get_by_label("Password").fill(demo.PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/")
        panel = page.get_by_test_id("tour-panel")
        assert "0 of 7 steps done" in panel.inner_text()
        assert page.get_by_test_id("tour-step").count() == len(STEPS)

        # each step's link opens its page, with the step's callout beside what it is about
        for number, step in enumerate(STEPS, start=1):
            page.goto(f"{base}/")
            page.locator(f'[data-step="{step}"] [data-testid="tour-step-link"]').click()
            callout = _callout(page, step)
            assert f"step {number} of 7" in callout.inner_text()
            if step != "create-and-link":  # that step points at the run's progress as a whole
                assert page.locator(".tour-highlight").count() == 1, step

        page.goto(f"{base}/")
        assert "7 of 7 steps done" in page.get_by_test_id("tour-progress").inner_text()

        # Next walks from one step to the next, across the scenarios
        page.goto(f"{base}/sync")
        _callout(page, "sync").get_by_test_id("tour-next").click()
        _callout(page, "payment-posted")

        # a callout passes axe-core at a desktop's width; the panel and a callout fit a
        # phone and pass there too (the every-page test checks the dashboard at both)
        problems = []
        page.goto(f"{base}/payments/exceptions")
        _callout(page, "exception-resolved")
        problems += _fits_and_passes_axe(page, "exceptions callout at 1280 px")
        page.set_viewport_size({"width": 390, "height": 900})
        page.goto(f"{base}/")
        problems += _fits_and_passes_axe(page, "dashboard at 390 px")
        page.goto(f"{base}/payments/exceptions")
        _callout(page, "exception-resolved")
        problems += _fits_and_passes_axe(page, "exceptions callout at 390 px")
        assert not problems, "\n".join(problems)

        # Dismiss tour: gone from this page, the dashboard, and the next step's page
        _callout(page, "exception-resolved").get_by_test_id("tour-dismiss").click()
        page.wait_for_url(f"{base}/payments/exceptions")
        page.goto(f"{base}/")
        assert page.get_by_test_id("tour-panel").count() == 0
        page.goto(f"{base}/sync")
        page.wait_for_load_state("networkidle")
        assert page.locator(".tour-callout").count() == 0
    print(f"tour followed in {time.monotonic() - started:.1f} s")
