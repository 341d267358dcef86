"""Importing connection settings activates a connection the way Save does: stored, tested
against the system it connects to, and active only when every check passes. A connection
whose test fails is saved but inactive, and the import says which and why.

Against the Sage 500 simulator (its schema and seed data in a database of its own), as
the connection-setup tests do."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from ledgerlink.identity.roles import Role
from ledgerlink.sandbox import sage500
from ledgerlink.store.db import Database
from tests.support.web import make_user, sign_in

#: Nothing listens on port 9 of the loopback: the connection is refused at once.
UNREACHABLE = "postgresql+psycopg://ledgerlink:pw@127.0.0.1:9/erp"
SETTINGS = {"company_id": "SOA", "receipt_gl_account": "1010-00"}


@pytest.fixture
def erp_url(tmp_path: Path) -> str:
    """A Sage 500 database (the simulator's schema and seed data) the checks pass on."""
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    engine = create_engine(url)
    sage500.create_schema(engine)
    sage500.seed(engine, sage500.Sage500Config(seed_people=5))
    engine.dispose()
    return url


def _create(client: TestClient, headers: dict[str, str], name: str, url: str) -> int:
    created = client.post(
        "/api/v1/connections",
        headers=headers,
        json={
            "kind": "sage500",
            "name": name,
            "settings": SETTINGS,
            "secrets": {"database_url": url},
        },
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def _document(*names: str) -> bytes:
    entries = "".join(
        f"- name: {name}\n  kind: sage500\n  active: true\n"
        "  settings: {company_id: SOA, receipt_gl_account: 1010-00}\n"
        for name in names
    )
    return f"ledgerlink_connections: 1\nconnections:\n{entries}".encode()


def test_an_import_activates_only_the_connections_whose_test_passes(
    client: TestClient, db: Database, erp_url: str
) -> None:
    admin = make_user(db, Role.ADMIN)
    headers = {"Authorization": f"Bearer {admin.token}"}
    good = _create(client, headers, "ERP East", erp_url)
    down = _create(client, headers, "ERP West", UNREACHABLE)
    token = sign_in(client, admin.email)

    response = client.post(
        "/connections/import",
        data={"csrftoken": token},
        files={"file": ("c.yaml", _document("ERP East", "ERP West", "ERP North"), "text/yaml")},
    )

    assert response.status_code == 200, response.text
    assert "1 created" in response.text
    assert "2 updated" in response.text
    assert "Tested and active: ERP East." in response.text
    assert "ERP West was saved but not activated: its connection test failed" in response.text
    assert "cannot connect" in response.text
    assert "ERP North was saved but not activated" in response.text  # no secrets yet
    listed = {
        c["name"]: c["is_active"] for c in client.get("/api/v1/connections", headers=headers).json()
    }
    assert listed == {"ERP East": True, "ERP West": False, "ERP North": False}
    assert good != down


def test_a_connection_the_file_marks_active_stays_inactive_when_its_test_fails(
    client: TestClient, db: Database, erp_url: str
) -> None:
    admin = make_user(db, Role.ADMIN)
    headers = {"Authorization": f"Bearer {admin.token}"}
    cid = _create(client, headers, "ERP", erp_url)
    activated = client.patch(
        f"/api/v1/connections/{cid}", headers=headers, json={"is_active": True}
    )
    assert activated.json()["is_active"] is True
    moved = client.patch(
        f"/api/v1/connections/{cid}",
        headers=headers,
        json={"secrets": {"database_url": UNREACHABLE}, "is_active": False},
    )
    assert moved.status_code == 200, moved.text
    token = sign_in(client, admin.email)

    response = client.post(
        "/connections/import",
        data={"csrftoken": token},
        files={"file": ("c.yaml", _document("ERP"), "text/yaml")},
    )

    assert response.status_code == 200, response.text
    assert "ERP was saved but not activated" in response.text
    assert client.get(f"/api/v1/connections/{cid}", headers=headers).json()["is_active"] is False
