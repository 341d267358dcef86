"""An administrator edits a GL account mapping in the portal, previews it, and saves it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerlink.settings import Settings
from tests.support.cli import cli
from tests.support.server import running_server, server_env

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-passphrase"
SPEC = "paytrace_transaction_to_sage500_cash_receipt"


def test_an_admin_edits_a_gl_mapping_previews_it_and_saves_a_new_version(
    page, settings: Settings, tmp_path: Path
) -> None:
    env = server_env(settings)
    cli(
        ["user", "create", "--email", "admin@example.org", "--role", "admin", "--password-stdin"],
        env,
        stdin=PASSWORD + "\n",
    )
    with running_server(env, tmp_path / "server.log") as base:
        # (the Settings page links here; the test enters the page directly)
        page.goto(f"{base}/settings/mappings")
        page.get_by_label("E-mail").fill("admin@example.org")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/settings/mappings")
        page.get_by_role("link", name=SPEC).click()
        assert "shipped version (" in page.get_by_test_id("active-version").inner_text()

        page.get_by_role("button", name="Preview").click()
        first = page.get_by_test_id("preview-output").first
        assert '"GLAcctNo": "1010-00"' in first.inner_text()

        page.get_by_label("GL account for sale / card").fill("1012-50")
        page.get_by_role("button", name="Preview").click()
        preview = page.get_by_test_id("preview")
        assert '"GLAcctNo": "1012-50"' in page.get_by_test_id("preview-output").first.inner_text()
        assert "Nothing was written" in preview.inner_text()
        assert "gl_account: 1012-50" in page.get_by_label("Spec YAML").input_value()
        assert "shipped version (" in page.get_by_test_id("active-version").inner_text()  # unsaved

        page.get_by_label("What changed (for the version history)").fill("card sales to 1012-50")
        page.get_by_role("button", name="Save as new version").click()
        assert "Saved as a new version" in page.get_by_role("status").inner_text()
        active = page.get_by_test_id("active-version")
        assert active.inner_text() == "v1 saved by admin@example.org"
        assert active.get_attribute("title") == f"{SPEC}@v1"  # the exact version id
        history = page.get_by_test_id("history").inner_text()
        assert "v1" in history
        assert "card sales to 1012-50" in history
        assert "admin@example.org" in history
        assert page.get_by_label("GL account for sale / card").input_value() == "1012-50"
