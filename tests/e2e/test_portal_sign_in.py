"""A real browser signs in to a real server and reaches the dashboard."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerlink.settings import Settings
from tests.support.server import run_cli, running_server, server_env

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-passphrase"


def test_an_operator_signs_in_and_reaches_the_dashboard(
    page, settings: Settings, tmp_path: Path
) -> None:
    env = server_env(settings)
    run_cli(
        ["user", "create", "--email", "ops@example.org", "--role", "operator", "--password-stdin"],
        env,
        stdin=PASSWORD + "\n",
    )
    with running_server(env, tmp_path / "server.log") as base:
        page.goto(f"{base}/audit")
        assert "/login" in page.url  # signed-out visitors are sent to sign in first

        page.get_by_label("E-mail").fill("ops@example.org")
        page.get_by_label("Password").fill("wrong password entirely")
        page.get_by_role("button", name="Sign in").click()
        assert "E-mail or password is wrong" in page.get_by_role("alert").inner_text()

        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/audit")  # back where they wanted to go
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
        assert page.get_by_role("heading", name="Dashboard").is_visible()
        assert "ops@example.org · operator" in page.get_by_test_id("signed-in-as").inner_text()
        nav = page.get_by_role("navigation", name="Main").inner_text()
        assert "Members" in nav
        assert "Reconciliation" in nav

        page.get_by_role("button", name="Sign out").click()
        assert "You are signed out" in page.content()
