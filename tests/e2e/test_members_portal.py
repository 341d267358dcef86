"""A real browser imports members with some bad rows, sees each row's error, searches,
and finds the members without a customer account."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from ledgerlink.settings import Settings
from tests.support.cli import cli
from tests.support.members import HEADER
from tests.support.server import running_server, server_env

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-passphrase"
CSV = "\n".join(
    [
        HEADER,
        "M00001,Jane,Doe,,jane@example.org,212-555-0123,personal,standard,active,"
        "123 main street,,new york,NY,10001,US",
        "M00002,John,Smith,,john@,,personal,standard,active,,,,,,",
        "M00003,Ann,Lee,,ann@example.org,,personal,platinum,active,,,,,,",
        "M00004,Ana,Lopez,,ana@example.org,(415) 555-0100,personal,standard,pending,,,,,,",
    ]
)


def test_an_operator_imports_members_sees_row_errors_and_finds_those_without_accounts(
    page, settings: Settings, tmp_path: Path
) -> None:
    env = server_env(settings)
    cli(
        ["user", "create", "--email", "ops@example.org", "--role", "operator", "--password-stdin"],
        env,
        stdin=PASSWORD + "\n",
    )
    from ledgerlink.identity.principal import cli_principal
    from ledgerlink.members.registry import build_level, create_level
    from ledgerlink.store.db import Database

    db = Database(settings.resolved_database_url)
    with db.transaction() as session:
        create_level(session, cli_principal(), build_level("standard", "Standard", "120.00", "USD"))
    db.dispose()
    members_csv = tmp_path / "members.csv"
    members_csv.write_text(CSV + "\n")

    with running_server(env, tmp_path / "server.log") as base:
        page.goto(f"{base}/members/import")
        page.get_by_label("E-mail").fill("ops@example.org")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/members/import")

        page.get_by_label("CSV file (UTF-8)").set_input_files(str(members_csv))
        page.get_by_role("button", name="Import").click()
        summary = page.get_by_test_id("import-summary").inner_text()
        assert "2 new, 0 updated, 0 unchanged, 2 rejected" in summary
        errors = page.get_by_test_id("import-error").all_inner_texts()
        assert len(errors) == 2
        assert errors[0].startswith("3\tM00002\temail")
        assert "platinum" in errors[1]
        assert "use one of: standard" in errors[1]

        page.get_by_role("navigation", name="Main").get_by_role("link", name="Members").click()
        page.get_by_label("Name, e-mail, phone or member number").fill("555-0100")
        page.get_by_role("button", name="Search").click()
        # the rows are read once the results page has loaded, not while it is arriving
        expect(page.get_by_test_id("member-row")).to_have_count(1)
        rows = page.get_by_test_id("member-row").all_inner_texts()
        assert "Ana Lopez" in rows[0]
        assert "+14155550100" in rows[0]

        page.get_by_label("Name, e-mail, phone or member number").fill("")
        page.get_by_label("Without customer account").check()
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_test_id("member-count")).to_contain_text(
            "2 member(s) without a customer account"
        )
        rows = page.get_by_test_id("member-row").all_inner_texts()
        assert [r.split("\t")[0] for r in rows] == ["M00001", "M00004"]
        for expected in ("jane@example.org", "+12125550123", "personal", "Standard"):
            assert expected in rows[0]
