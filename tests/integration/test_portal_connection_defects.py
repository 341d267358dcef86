"""Connections in the portal (issue 19): saving never loses configuration, an unreachable
or hung upstream is told in words and quickly, and an empty SMTP user name means no login."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy import select

from ledgerlink import demo
from ledgerlink.identity.roles import Role
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.faults import FaultInjector, FaultPlan
from ledgerlink.sandbox.paytrace import PayTraceConfig
from ledgerlink.sandbox.paytrace import create_app as paytrace_app
from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.sandbox.supervisor import SimulatorAddress
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.models import Connection
from ledgerlink.web.app import create_app
from tests.support.asgi_server import serve_in_thread
from tests.support.payments import running_erp
from tests.support.sbc import connect_ledgerlink, running_sbc
from tests.support.smtp import smtp_server
from tests.support.web import make_user, sign_in


def form_as_sent(html: str, form_id: str = "settings-form") -> dict[str, str | list[str]]:
    """What a browser submits for the form as the page rendered it: each named input's
    value (ticked boxes only), each select's chosen option, hidden fields included."""
    form = BeautifulSoup(html, "html.parser").find("form", id=form_id)
    assert form is not None, f"no form #{form_id} on the page"
    sent: dict[str, str | list[str]] = {}

    def add(name: str, value: str) -> None:
        if name in sent:
            before = sent[name]
            sent[name] = [*before, value] if isinstance(before, list) else [before, value]
        else:
            sent[name] = value

    for field in form.find_all(["input", "select", "textarea"]):
        name = field.get("name")
        if not name:
            continue
        if field.name == "select":
            chosen = field.find("option", selected=True) or field.find("option")
            add(str(name), str(chosen.get("value", "")) if chosen else "")
        elif field.get("type") == "checkbox":
            if field.has_attr("checked"):
                add(str(name), str(field.get("value", "on")))
        elif field.name == "textarea":
            add(str(name), field.text)
        else:
            add(str(name), str(field.get("value", "")))
    return sent


def _stored(db: Database, cid: int) -> Connection:
    with db.read() as session:
        found = session.scalars(select(Connection).where(Connection.id == cid)).one()
        return found


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_saving_while_sage_is_unreachable_keeps_the_mapping_and_the_active_connection(
    client: TestClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    runtime = Runtime(settings)
    admin = make_user(db, Role.ADMIN)
    with running_sbc(tmp_path / "sbc", SbcConfig(rate_limit_per_minute=0, seed_people=3)) as (
        base,
        _,
    ):
        cid = connect_ledgerlink(runtime, base)
        token = sign_in(client, admin.email)
        page = client.get(f"/connections/{cid}")
        soup = BeautifulSoup(page.text, "html.parser")
        card_method = soup.find("select", attrs={"name": "pm_card_method"})
        card_bank = soup.find("select", attrs={"name": "pm_card_bank"})
        assert card_method is not None, page.text
        assert card_bank is not None, page.text
        method = card_method.find_all("option")[1]["value"]
        bank = card_bank.find_all("option")[1]["value"]
        form = form_as_sent(page.text) | {
            "pm_card_method": method,
            "pm_card_bank": bank,
            "csrftoken": token,
        }
        saved = client.post(f"/connections/{cid}", data=form, follow_redirects=False)
        assert saved.status_code == 303, saved.text
    mapping = {"card": {"payment_method_id": method, "bank_account_id": bank}}
    assert _stored(db, cid).settings["payment_methods"] == mapping
    assert _stored(db, cid).is_active

    # Sage is gone: the page offers no choices, and the administrator saves what it shows.
    page = client.get(f"/connections/{cid}")
    again = client.post(f"/connections/{cid}", data=form_as_sent(page.text) | {"csrftoken": token})

    stored = _stored(db, cid)
    assert stored.settings["payment_methods"] == mapping
    assert stored.is_active
    text = BeautifulSoup(again.text, "html.parser").get_text(" ", strip=True)
    assert "Saved, but not verified" in text
    assert "could not be reached" in text
    runtime.db.dispose()


def _smtp_connection(client: TestClient, db: Database) -> tuple[int, str]:
    """An SMTP connection made through the API, and an administrator signed in to the
    portal (the CSRF token of the session)."""
    admin = make_user(db, Role.ADMIN)
    created = client.post(
        "/api/v1/connections",
        headers={"Authorization": f"Bearer {admin.token}"},
        json={"kind": "smtp", "name": "Finance mail", "settings": {}},
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"]), sign_in(client, admin.email)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_empty_smtp_user_name_means_no_login(client: TestClient, db: Database) -> None:
    with smtp_server() as (port, inbox):
        cid, token = _smtp_connection(client, db)
        page = client.get(f"/connections/{cid}")
        form = form_as_sent(page.text) | {
            "host": "127.0.0.1",
            "port": str(port),
            "security": "none",
            "username": "",
            "from_address": "ledgerlink@example.org",
            "recipients": "finance@example.org",
            "csrftoken": token,
        }

        saved = client.post(f"/connections/{cid}", data=form, follow_redirects=True)

    assert "Input should be a valid string" not in saved.text
    assert "Saved and tested" in saved.text
    stored = _stored(db, cid)
    assert stored.settings["username"] == ""
    assert stored.is_active
    assert inbox.subjects() == ["ledgerlink: test message"]  # sent without logging in


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_refused_smtp_setting_shows_beside_its_field_with_what_was_typed(
    client: TestClient, db: Database
) -> None:
    cid, token = _smtp_connection(client, db)
    page = client.get(f"/connections/{cid}")
    form = form_as_sent(page.text) | {
        "host": "mail.example.org",
        "port": "2525",
        "username": "",
        "from_address": "ledgerlink@example.org",
        "recipients": "finance@example.org",
        "timezone": "Mars/Olympus_Mons",
        "csrftoken": token,
    }

    refused = client.post(f"/connections/{cid}", data=form)

    assert refused.status_code == 422
    soup = BeautifulSoup(refused.text, "html.parser")
    zone = soup.find("input", attrs={"name": "timezone"})
    assert zone is not None
    assert zone["value"] == "Mars/Olympus_Mons"
    assert zone["aria-invalid"] == "true"
    beside = soup.find(id=zone["aria-describedby"])
    assert beside is not None
    assert "is not a time zone; use a name like Europe/London" in beside.get_text()
    assert beside.find_previous("input") == zone
    kept = form_as_sent(refused.text)
    assert (kept["host"], kept["port"], kept["recipients"]) == (
        "mail.example.org",
        "2525",
        "finance@example.org",
    )
    assert _stored(db, cid).settings["host"] == ""  # nothing stored


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_test_connection_gives_up_on_a_hung_sage_within_its_deadline_and_says_why(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    quick = settings.model_copy(update={"connection_test_seconds": 1.0})
    runtime = Runtime(quick)
    faults = FaultInjector()
    books = SbcConfig(rate_limit_per_minute=0, seed_people=3)
    with (
        running_sbc(tmp_path / "sbc", books, faults) as (base, _),
        TestClient(create_app(quick), base_url="http://127.0.0.1") as client,
    ):
        cid = connect_ledgerlink(runtime, base)
        token = sign_in(client, make_user(db, Role.OPERATOR).email)
        faults.replace(FaultPlan(hang_rate=1.0, hang_seconds=8))  # Sage stops answering

        started = time.monotonic()
        answer = client.post(
            f"/connections/{cid}/test", data={"csrftoken": token}, headers={"HX-Request": "true"}
        )
        waited = time.monotonic() - started
        print(f"Test connection answered after {waited:.2f} s")
        faults.replace(FaultPlan())

    assert answer.status_code == 200
    # gave up long before the hung Sage would answer (8 s), with room for a loaded machine
    assert waited < 6, f"the test waited {waited:.1f} s for a hung Sage"
    said = BeautifulSoup(answer.text, "html.parser").get_text(" ", strip=True)
    assert "Sage Business Cloud did not answer within 1 s" in said
    runtime.db.dispose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_demo_card_payment_connections_are_active_when_the_demo_starts(
    settings: Settings, tmp_path: Path
) -> None:
    """The demo posts card payments through PayTrace into Sage 500 from its first minute;
    both connections are tested and active, as a Save in the portal would leave them."""
    runtime = Runtime(settings)
    upgrade(runtime.db)
    settings.sandbox_dir.mkdir(parents=True, exist_ok=True)
    with running_erp(settings.sandbox_sage500_url, 10):
        app = paytrace_app(tmp_path / "pt", config=PayTraceConfig(seed_people=10))
        with serve_in_thread(app) as base:
            where = {
                "paytrace": SimulatorAddress("paytrace", base),
                "sage500": SimulatorAddress("sage500", "http://127.0.0.1:9"),
            }
            with runtime.db.transaction() as session:
                demo.ensure_connections(runtime, session, demo.sandbox_connections(runtime, where))
            demo.wire_payments(runtime, where)
    with runtime.db.read() as session:
        state = {c.name: c.is_active for c in session.scalars(select(Connection))}
    assert state == {"PayTrace (sandbox)": True, "Sage 500 (sandbox)": True}
    runtime.db.dispose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_saving_the_e_mail_settings_while_the_mail_server_is_down_keeps_it_active(
    client: TestClient, db: Database
) -> None:
    cid, token = _smtp_connection(client, db)
    with smtp_server() as (port, _):
        form = form_as_sent(client.get(f"/connections/{cid}").text) | {
            "host": "127.0.0.1",
            "port": str(port),
            "security": "none",
            "from_address": "ledgerlink@example.org",
            "recipients": "finance@example.org",
            "csrftoken": token,
        }
        assert client.post(f"/connections/{cid}", data=form, follow_redirects=False).is_redirect
    assert _stored(db, cid).is_active

    again = client.post(f"/connections/{cid}", data=form | {"digest_at": "08:15"})

    stored = _stored(db, cid)
    assert stored.is_active
    assert stored.settings["digest_at"] == "08:15"
    text = BeautifulSoup(again.text, "html.parser").get_text(" ", strip=True)
    assert "Saved, but not verified: E-mail (SMTP) could not be reached" in text
