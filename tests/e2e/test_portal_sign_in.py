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


def test_a_long_sign_in_address_keeps_the_navigation_on_one_line(
    page, settings: Settings, tmp_path: Path
) -> None:
    email = "finance.administrator@northwind-membership-society.example"
    env = server_env(settings)
    run_cli(
        ["user", "create", "--email", email, "--role", "admin", "--password-stdin"],
        env,
        stdin=PASSWORD + "\n",
    )
    page.set_viewport_size({"width": 1280, "height": 800})
    with running_server(env, tmp_path / "server.log") as base:
        page.goto(f"{base}/login")
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/")

        links = page.get_by_role("navigation", name="Main").get_by_role("link")
        rows = {round(box["y"]) for box in (link.bounding_box() for link in links.all()) if box}
        assert len(rows) == 1, f"the navigation wraps onto {len(rows)} lines at 1280 px"
        assert "Settings" in page.get_by_role("navigation", name="Main").inner_text()
        signed_in = page.get_by_test_id("signed-in-as")
        assert signed_in.get_attribute("title") == f"Signed in as {email} (admin)"
        assert "· admin" in signed_in.inner_text()  # the role is never the part cut off
