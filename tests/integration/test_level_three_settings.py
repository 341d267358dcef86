"""The Level 3 commodity table of a PayTrace connection: edited in the portal's PayTrace
settings and through the API, exported and imported as YAML with the other settings, and
validated (a commodity code PayTrace would not take is refused naming the field, with what
was typed kept and nothing stored)."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from ledgerlink.connections_config import export_yaml
from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection
from tests.integration.test_portal_connection_defects import form_as_sent
from tests.support.web import make_user, sign_in

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
TABLE = "WIDGET-01 = 43211503 EA\nBOLT-7 = 31161500 BX\n"


def _paytrace(client: TestClient, db: Database) -> tuple[int, str, str]:
    """A PayTrace connection made through the API; its id, the administrator's API token
    and their portal session's CSRF token."""
    admin = make_user(db, Role.ADMIN)
    created = client.post(
        "/api/v1/connections",
        headers={"Authorization": f"Bearer {admin.token}"},
        json={
            "kind": "paytrace",
            "name": "PayTrace",
            "settings": {"username": "demo", "integrator_id": "959195xEVBTk"},
        },
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"]), admin.token, sign_in(client, admin.email)


def _settings(db: Database, cid: int) -> dict:  # type: ignore[type-arg]
    with db.read() as session:
        found = session.get(Connection, cid)
        assert found is not None
        return dict(found.settings)


def test_the_commodity_table_is_saved_from_the_portal_and_exported_as_yaml(
    client: TestClient, db: Database
) -> None:
    cid, _, csrf = _paytrace(client, db)
    page = client.get(f"/connections/{cid}")
    form = form_as_sent(page.text) | {
        "level_three_commodities": TABLE,
        "level_three_default_commodity_code": "80141600",
        "level_three_ship_from_zip": "98101",
        "csrftoken": csrf,
    }

    client.post(f"/connections/{cid}", data=form)

    stored = _settings(db, cid)
    assert stored["level_three_commodities"] == [
        {"item_code": "WIDGET-01", "commodity_code": "43211503", "unit_of_measure": "EA"},
        {"item_code": "BOLT-7", "commodity_code": "31161500", "unit_of_measure": "BX"},
    ]
    assert stored["level_three_default_commodity_code"] == "80141600"
    shown = BeautifulSoup(client.get(f"/connections/{cid}").text, "html.parser")
    table = shown.find("textarea", attrs={"name": "level_three_commodities"})
    assert table is not None
    assert table.text == TABLE
    with db.read() as session:
        exported = export_yaml(session)
    assert "commodity_code: '43211503'" in exported or "commodity_code: 43211503" in exported


def test_a_bad_commodity_code_is_refused_beside_the_table_with_what_was_typed(
    client: TestClient, db: Database
) -> None:
    cid, _, csrf = _paytrace(client, db)
    before = _settings(db, cid)
    page = client.get(f"/connections/{cid}")
    typed = "WIDGET-01 = 43211503 EA\nBOLT-7 = 3116-1500 EA\n"
    form = form_as_sent(page.text) | {"level_three_commodities": typed, "csrftoken": csrf}

    refused = client.post(f"/connections/{cid}", data=form)

    assert refused.status_code == 422
    soup = BeautifulSoup(refused.text, "html.parser")
    table = soup.find("textarea", attrs={"name": "level_three_commodities"})
    assert table is not None
    assert table["aria-invalid"] == "true"
    beside = soup.find(id=table["aria-describedby"])
    assert beside is not None
    assert "commodity code '3116-1500' is not a commodity code" in beside.get_text()
    assert "1 to 12 letters or digits" in beside.get_text()
    assert table.text == typed
    assert _settings(db, cid) == before  # nothing stored


def test_the_api_refuses_a_bad_commodity_code_naming_the_row_and_field(
    client: TestClient, db: Database
) -> None:
    cid, token, _ = _paytrace(client, db)
    bad = client.patch(
        f"/api/v1/connections/{cid}",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "settings": {
                "level_three_commodities": [
                    {"item_code": "WIDGET-01", "commodity_code": "43211503"},
                    {"item_code": "BOLT-7", "commodity_code": "00000000"},
                ]
            }
        },
    )
    assert bad.status_code == 422, bad.text
    error = bad.json()["errors"][0]
    assert error["field"] == "settings.level_three_commodities.1.commodity_code"
    assert "not all zeros" in error["message"]
    twice = client.patch(
        f"/api/v1/connections/{cid}",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "settings": {
                "level_three_commodities": [
                    {"item_code": "WIDGET-01", "commodity_code": "43211503"},
                    {"item_code": "widget-01", "commodity_code": "31161500"},
                ]
            }
        },
    )
    assert twice.status_code == 422
    assert twice.json()["errors"][0]["field"] == "settings.level_three_commodities"
    assert "listed twice" in twice.json()["errors"][0]["message"]
    zip_code = client.patch(
        f"/api/v1/connections/{cid}",
        headers={"Authorization": f"Bearer {token}"},
        json={"settings": {"level_three_ship_from_zip": "9810"}},
    )
    assert zip_code.status_code == 422
    assert zip_code.json()["errors"][0]["field"] == "settings.level_three_ship_from_zip"
