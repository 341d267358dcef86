"""An administrator's first hour, in a real browser against the SBC simulator: configure
Sage Business Cloud (a failing and a passing test), connect through Sage's consent page,
import members with some bad rows, create and link one account, then bulk create-and-link
the other 199, and see Sage hold exactly one contact per member."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rapidfuzz import fuzz, process, utils

from ledgerlink.sandbox.people import FIRST_NAMES, LAST_NAMES
from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.settings import Settings
from tests.support.members import HEADER
from tests.support.sbc import SbcClient, running_sbc
from tests.support.server import run_cli, running_server, running_worker, server_env

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-passphrase"
MEMBERS = 200


def distinct_names(count: int) -> list[str]:
    """Names no two of which look alike to the duplicate check (similarity < 80)."""
    kept: list[str] = []
    processed: list[str] = []
    for last in LAST_NAMES:
        for first in FIRST_NAMES:
            name = f"{first} {last}"
            key = utils.default_process(name)
            best = process.extractOne(key, processed, scorer=fuzz.token_sort_ratio, processor=None)
            if best is not None and best[1] >= 80:
                continue
            kept.append(name)
            processed.append(key)
            if len(kept) == count:
                return kept
    raise AssertionError("not enough distinct names")


def members_csv() -> str:
    rows = [HEADER]
    for n, name in enumerate(distinct_names(MEMBERS), start=1):
        first, last = name.split(" ")
        rows.append(
            f"B{n:05d},{first},{last},,{first.lower()}.{last.lower()}.{n}@example.org,,personal,"
            "individual,active,,,,,,"
        )
    rows.append("B90001,Bad,Email,,not-an-email,,personal,individual,active,,,,,,")
    rows.append("B90002,Bad,Level,,bad.level@example.org,,personal,platinum,active,,,,,,")
    return "\n".join(rows) + "\n"


@contextlib.contextmanager
def ledgerlink(settings: Settings, env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(running_server(env, tmp_path / "server.log"))
        if settings.resolved_database_url.startswith("postgresql"):
            stack.enter_context(running_worker(env, tmp_path / "worker.log"))
        yield base


def test_configure_sbc_import_members_and_link_them(
    page, settings: Settings, tmp_path: Path
) -> None:
    env = server_env(settings)
    run_cli(
        ["user", "create", "--email", "admin@example.org", "--role", "admin", "--password-stdin"],
        env,
        stdin=PASSWORD + "\n",
    )
    from ledgerlink.identity.principal import cli_principal
    from ledgerlink.members.registry import build_level, create_level
    from ledgerlink.store.db import Database

    db = Database(settings.resolved_database_url)
    with db.transaction() as session:
        create_level(
            session, cli_principal(), build_level("individual", "Individual", "120.00", "USD")
        )
    db.dispose()
    upload = tmp_path / "members.csv"
    upload.write_text(members_csv())
    config = SbcConfig(rate_limit_per_minute=0, seed_people=0)

    with (
        running_sbc(tmp_path / "sbc", config) as (sbc_url, _),
        ledgerlink(settings, env, tmp_path) as base,
    ):
        page.goto(f"{base}/connections")
        page.get_by_label("E-mail").fill("admin@example.org")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/connections")

        # -- configure Sage Business Cloud, first with a wrong secret ------------------------
        page.get_by_label("System").select_option("sbc")
        page.get_by_label("Name").fill("Sage Business Cloud")
        page.get_by_role("button", name="Add connection").click()
        page.wait_for_url(re.compile(rf"{base}/connections/\d+"))
        connection_url = page.url.split("?")[0]
        page.get_by_label("Client id").fill(config.client_id)
        page.get_by_label("Client secret").fill("not-the-secret")
        page.get_by_text("Addresses of the Sage services").click()
        page.get_by_label("API", exact=True).fill(f"{sbc_url}/v3.1")
        page.get_by_label("Consent page").fill(f"{sbc_url}/oauth2/auth/central")
        page.get_by_label("Token service").fill(f"{sbc_url}/token")
        page.get_by_role("button", name="Save", exact=True).click()
        assert "Saved, but not active" in page.get_by_role("alert").first.inner_text()

        page.get_by_role("button", name="Test connection").click()
        checks = page.get_by_test_id("connection-checks")
        checks.wait_for()
        assert "fail" in checks.inner_text()
        assert "Connect to Sage" in checks.inner_text()

        page.get_by_role("button", name="Connect to Sage").click()
        page.wait_for_url(f"{sbc_url}/oauth2/auth/central**")
        page.get_by_role("button", name="Allow").click()
        assert "Sage does not recognise the client id and secret" in page.content()

        # -- fix the secret, connect, pick the business and bank account ------------------------
        page.goto(connection_url)
        page.get_by_label("Client secret").fill(config.client_secret)
        page.get_by_role("button", name="Save", exact=True).click()
        page.get_by_role("button", name="Connect to Sage").click()
        page.wait_for_url(f"{sbc_url}/oauth2/auth/central**")
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(f"{connection_url}?done=connected")
        assert "connected to Sage" in page.content()
        page.get_by_label("Business").select_option(label="Lakeside Members Association")
        page.get_by_label("Card receipts are paid into").select_option(label="Card Clearing (1010)")
        page.get_by_role("button", name="Save", exact=True).click()
        page.wait_for_url(f"{connection_url}?done=saved")
        page.get_by_role("button", name="Test connection").click()
        checks = page.get_by_test_id("connection-checks")
        checks.wait_for()
        assert "fail" not in checks.inner_text()
        assert "using Lakeside Members Association" in checks.inner_text()

        # -- import members, two rows are bad -------------------------------------------------
        page.goto(f"{base}/members/import")
        page.get_by_label("CSV file (UTF-8)").set_input_files(str(upload))
        page.get_by_role("button", name="Import").click()
        summary = page.get_by_test_id("import-summary").inner_text()
        assert f"{MEMBERS} new, 0 updated, 0 unchanged, 2 rejected" in summary

        # -- find those without an account, create and link one ----------------------------------
        page.goto(f"{base}/members?without_account=1")
        assert (
            f"{MEMBERS} member(s) without a customer account"
            in page.get_by_test_id("member-count").inner_text()
        )
        page.goto(f"{base}/members/B00001")
        page.get_by_role("button", name="Create Account").click()
        confirmation = page.get_by_test_id("link-confirmation").inner_text()
        assert "Created Sage Business Cloud contact" in confirmation
        assert "B00001" in confirmation

        # -- bulk create-and-link the rest -------------------------------------------------
        # The simulator runs without SBC's 100 requests/minute here, so lift the client-side
        # limit too (an administrator does this through the settings file); at 100/minute
        # the run would take two minutes and show the same result.
        _lift_rate_limit(settings)
        page.goto(f"{base}/members?without_account=1")
        page.get_by_role("button", name=f"Create and link all {MEMBERS - 1} filtered").click()
        page.wait_for_url(re.compile(rf"{base}/members/bulk/\d+"))
        status = page.get_by_test_id("bulk-status")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=bulk-status]').innerText === 'finished'",
            timeout=120_000,
        )
        assert status.inner_text() == "finished"
        progress = page.get_by_test_id("bulk-progress").inner_text()
        assert f"{MEMBERS - 1} of {MEMBERS - 1}" in progress
        assert f"{MEMBERS - 1} created" in progress
        assert "0 failed" in progress

        observer = SbcClient(sbc_url, config).connect()
        contacts = observer.all_items("/contacts", items_per_page=200, attributes="reference")
        references = sorted(c["reference"] for c in contacts)
        assert references == [f"B{n:05d}" for n in range(1, MEMBERS + 1)]


def _lift_rate_limit(settings: Settings) -> None:
    from sqlalchemy import select

    from ledgerlink import connections
    from ledgerlink.identity.principal import cli_principal
    from ledgerlink.runtime import Runtime
    from ledgerlink.store.models import Connection

    runtime = Runtime(settings)
    with runtime.db.transaction() as session:
        connection = session.scalars(select(Connection)).one()
        connections.update(
            session,
            runtime.vault,
            cli_principal(),
            connection,
            settings={"rate_limit_per_minute": 0},
        )
    runtime.db.dispose()
