"""The ACH payment method of a Sage 500 connection, set in the portal: two boxes on the
connection's page (method, GL cash account) saved as ``payment_methods.ach``; emptied, the
default applies again. Nothing else on the page is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from ledgerlink.identity.roles import Role
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection
from tests.support.payments import add_sage500_connection, running_erp
from tests.support.web import make_user, sign_in


def _form(html: str) -> dict[str, str]:
    """The settings form's text boxes and chosen options, as a browser sends them."""
    form = BeautifulSoup(html, "html.parser").find("form", id="settings-form")
    assert form is not None
    sent: dict[str, str] = {}
    for field in form.find_all(["input", "select"]):
        name = field.get("name")
        if not name or field.get("type") == "checkbox":
            continue
        if field.name == "select":
            chosen = field.find("option", selected=True) or field.find("option")
            sent[str(name)] = str(chosen.get("value", "")) if chosen else ""
        else:
            sent[str(name)] = str(field.get("value", ""))
    return sent


def _settings(db: Database, cid: int) -> dict[str, object]:
    with db.read() as session:
        found = session.get(Connection, cid)
        assert found is not None
        return dict(found.settings)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_ach_method_of_a_sage500_connection_is_set_and_cleared_in_the_portal(
    client: TestClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    runtime = Runtime(settings)
    url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    with running_erp(url, 2):
        with runtime.db.transaction() as session:
            cid = int(add_sage500_connection(runtime, session, url).id)
        admin = make_user(db, Role.ADMIN)
        token = sign_in(client, admin.email)
        page = client.get(f"/connections/{cid}")
        assert 'name="ach_gl_account"' in page.text, page.text
        sent = _form(page.text) | {
            "ach_payment_method_id": "EFT",
            "ach_gl_account": "1020-00",
            "csrftoken": token,
        }
        saved = client.post(f"/connections/{cid}", data=sent, follow_redirects=False)
        assert saved.status_code == 303, saved.text
        stored = _settings(db, cid)
        assert stored["payment_methods"] == {
            "ach": {"payment_method_id": "EFT", "bank_account_id": "1020-00"}
        }
        assert stored["receipt_gl_account"] == "1010-00"  # the rest of the page kept

        page = client.get(f"/connections/{cid}")
        assert 'value="EFT"' in page.text
        cleared = _form(page.text) | {
            "ach_payment_method_id": "",
            "ach_gl_account": "",
            "csrftoken": token,
        }
        client.post(f"/connections/{cid}", data=cleared, follow_redirects=False)
        assert _settings(db, cid)["payment_methods"] == {}
    runtime.db.dispose()
