"""Saving a connection is one use case for the portal and the API: store, test, and
activate only when every check passes, telling the user the same thing either way."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from typer.testing import CliRunner

from ledgerlink.cli import app
from ledgerlink.connection_setup import ACTIVE, KEPT_INACTIVE, NOT_ACTIVE, NOT_VERIFIED
from ledgerlink.connectors import registry
from ledgerlink.identity.roles import Role
from ledgerlink.sandbox import sage500
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from tests.support.testbooks import TESTBOOKS
from tests.support.web import make_user, sign_in

#: Nothing listens on port 9 of the loopback: the connection is refused at once.
UNREACHABLE = "postgresql+psycopg://ledgerlink:pw@127.0.0.1:9/erp"


@pytest.fixture
def erp_url(tmp_path: Path) -> str:
    """A Sage 500 database (the simulator's schema and seed data) the checks pass on."""
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    engine = create_engine(url)
    sage500.create_schema(engine)
    sage500.seed(engine, sage500.Sage500Config(seed_people=5))
    engine.dispose()
    return url


@pytest.fixture
def not_sage_url(tmp_path: Path) -> str:
    """A database that answers but holds no Sage 500 tables: the checks fail on an answer."""
    return f"sqlite:///{tmp_path / 'empty.db'}"


def _sage500(client: TestClient, headers: dict[str, str], url: str) -> int:
    created = client.post(
        "/api/v1/connections",
        headers=headers,
        json={
            "kind": "sage500",
            "name": "ERP",
            "settings": {"company_id": "SOA", "receipt_gl_account": "1010-00"},
            "secrets": {"database_url": url},
        },
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def test_the_api_tests_a_connection_before_activating_it(
    client: TestClient, db: Database, not_sage_url: str
) -> None:
    headers = {"Authorization": f"Bearer {make_user(db, Role.ADMIN).token}"}
    cid = _sage500(client, headers, not_sage_url)

    response = client.patch(f"/api/v1/connections/{cid}", headers=headers, json={"is_active": True})

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["detail"] == NOT_ACTIVE
    assert problem["errors"][0]["field"] == "checks.permissions"
    assert "cannot read tsmCompany" in problem["errors"][0]["message"]
    assert client.get(f"/api/v1/connections/{cid}", headers=headers).json()["is_active"] is False


def test_a_connection_that_cannot_be_reached_is_saved_but_not_verified(
    client: TestClient, db: Database
) -> None:
    headers = {"Authorization": f"Bearer {make_user(db, Role.ADMIN).token}"}
    cid = _sage500(client, headers, UNREACHABLE)

    response = client.patch(f"/api/v1/connections/{cid}", headers=headers, json={"is_active": True})

    assert response.status_code == 409
    problem = response.json()
    assert problem["detail"] == NOT_VERIFIED.format(system="Sage 500", state=KEPT_INACTIVE)
    assert problem["errors"][0]["field"] == "checks.reachable"
    assert "cannot connect" in problem["errors"][0]["message"]
    assert client.get(f"/api/v1/connections/{cid}", headers=headers).json()["is_active"] is False


def test_the_api_activates_a_connection_whose_checks_pass(
    client: TestClient, db: Database, erp_url: str
) -> None:
    headers = {"Authorization": f"Bearer {make_user(db, Role.ADMIN).token}"}
    cid = _sage500(client, headers, erp_url)

    response = client.patch(f"/api/v1/connections/{cid}", headers=headers, json={"is_active": True})

    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is True


def test_changing_an_active_connection_tests_it_again(
    client: TestClient, db: Database, erp_url: str, not_sage_url: str
) -> None:
    headers = {"Authorization": f"Bearer {make_user(db, Role.ADMIN).token}"}
    cid = _sage500(client, headers, erp_url)
    assert client.patch(
        f"/api/v1/connections/{cid}", headers=headers, json={"is_active": True}
    ).json()["is_active"]

    response = client.patch(
        f"/api/v1/connections/{cid}",
        headers=headers,
        json={"secrets": {"database_url": not_sage_url}},
    )

    assert response.status_code == 409
    assert response.json()["detail"] == NOT_ACTIVE
    assert client.get(f"/api/v1/connections/{cid}", headers=headers).json()["is_active"] is False


def test_an_active_connection_stays_active_when_its_system_cannot_be_reached(
    client: TestClient, db: Database, erp_url: str
) -> None:
    """An outage says nothing about the settings: they are stored, and the connection keeps
    the state its last verified test gave it."""
    headers = {"Authorization": f"Bearer {make_user(db, Role.ADMIN).token}"}
    cid = _sage500(client, headers, erp_url)
    assert client.patch(
        f"/api/v1/connections/{cid}", headers=headers, json={"is_active": True}
    ).json()["is_active"]

    response = client.patch(
        f"/api/v1/connections/{cid}",
        headers=headers,
        json={
            "settings": {"refund_gl_account": "1020-00"},
            "secrets": {"database_url": UNREACHABLE},
        },
    )

    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is True
    assert response.json()["settings"]["refund_gl_account"] == "1020-00"


def test_deactivating_needs_no_test(client: TestClient, db: Database, erp_url: str) -> None:
    headers = {"Authorization": f"Bearer {make_user(db, Role.ADMIN).token}"}
    cid = _sage500(client, headers, UNREACHABLE)
    response = client.patch(
        f"/api/v1/connections/{cid}", headers=headers, json={"is_active": False}
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False


def test_the_portal_and_the_api_say_the_same(
    client: TestClient, db: Database, erp_url: str, not_sage_url: str
) -> None:
    admin = make_user(db, Role.ADMIN)
    headers = {"Authorization": f"Bearer {admin.token}"}
    failing = _sage500(client, headers, not_sage_url)
    token = sign_in(client, admin.email)
    form = {"mode": "sql", "company_id": "SOA", "currency": "USD", "csrftoken": token}

    page = client.post(f"/connections/{failing}", data=form)
    api = client.patch(f"/api/v1/connections/{failing}", headers=headers, json={"is_active": True})

    assert page.status_code == 200
    assert NOT_ACTIVE in page.text
    assert "cannot read tsmCompany" in page.text
    assert api.json()["detail"] == NOT_ACTIVE

    working = client.post(
        "/api/v1/connections",
        headers=headers,
        json={"kind": "sage500", "name": "ERP 2", "secrets": {"database_url": erp_url}},
    ).json()["id"]
    saved = client.post(f"/connections/{working}", data=form, follow_redirects=True)
    assert ACTIVE in saved.text
    assert client.get(f"/api/v1/connections/{working}", headers=headers).json()["is_active"]


def test_a_kind_without_a_form_of_its_own_gets_the_generic_form(
    client: TestClient, db: Database
) -> None:
    """A new ledger kind registered from its package alone (Test Books, test-only) can be
    added and edited; its page shows its own settings, never another kind's form."""
    admin = make_user(db, Role.ADMIN)
    headers = {"Authorization": f"Bearer {admin.token}"}
    with registry.registered(TESTBOOKS):
        created = client.post(
            "/api/v1/connections",
            headers=headers,
            json={"kind": "testbooks", "name": "Books", "settings": {"books": "main"}},
        )
        assert created.status_code == 201, created.text
        sign_in(client, admin.email)
        home = client.get("/connections")
        page = client.get(f"/connections/{created.json()['id']}")
    assert '<option value="testbooks">Test Books</option>' in home.text
    assert page.status_code == 200
    assert 'name="books" value="main"' in page.text
    assert 'name="secret_api_key"' in page.text
    assert "Sage 500" not in page.text
    unknown = client.post(
        "/api/v1/connections", headers=headers, json={"kind": "testbooks", "name": "Gone"}
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "kind"


def test_the_cli_lists_authorisation_only_for_kinds_that_are_authorised(
    client: TestClient, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {"Authorization": f"Bearer {make_user(db, Role.ADMIN).token}"}
    for kind, name in (("sbc", "Sage"), ("paytrace", "Cards")):
        client.post(
            "/api/v1/connections", headers=headers, json={"kind": kind, "name": name}
        ).raise_for_status()
    monkeypatch.setenv("LEDGERLINK_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("LEDGERLINK_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("LEDGERLINK_VAULT_KEYS", settings.vault_keys.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.setenv("COLUMNS", "200")

    listed = CliRunner().invoke(app, ["connection", "list"])

    assert listed.exit_code == 0, listed.output
    [sage] = [line for line in listed.output.splitlines() if " Sage " in line]
    [cards] = [line for line in listed.output.splitlines() if " Cards " in line]
    assert "not connected" in sage
    assert "n/a" in cards
