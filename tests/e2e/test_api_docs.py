"""The API documentation works in a real browser under the Content-Security-Policy (the
page fixture fails a test on any CSP violation).

It runs once, on SQLite: the page, its scripts and the OpenAPI document it renders are the
same whatever the back-end, which only holds the user who signs in."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerlink.settings import Settings
from tests.support.cli import cli
from tests.support.server import running_server, server_env

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-passphrase"


@pytest.fixture
def backend() -> str:
    """SQLite only (this overrides the back-end parameter): see the module doc."""
    return "sqlite"


def test_swagger_ui_shows_the_api_to_a_signed_in_user(
    page, settings: Settings, tmp_path: Path
) -> None:
    env = server_env(settings)
    cli(
        ["user", "create", "--email", "dev@example.org", "--role", "viewer", "--password-stdin"],
        env,
        stdin=PASSWORD + "\n",
    )
    with running_server(env, tmp_path / "server.log") as base:
        page.goto(f"{base}/login")
        page.get_by_label("E-mail").fill("dev@example.org")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/")
        page.goto(f"{base}/api/docs")
        assert "ledgerlink" in page.locator(".swagger-ui .info .title").inner_text()
        page.get_by_text("/api/v1/me", exact=True).first.click()  # an operation opens
        assert page.get_by_role("button", name="Try it out").first.is_visible()
