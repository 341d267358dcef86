"""*Link existing* on a member's page (issue 19): any customer id the user types, or a
search of the ledger's customers by name or number, not only the suggestions; an id the
ledger does not know is refused beside the field, naming it. Against the SBC simulator
over a real socket and the Sage 500 simulator's database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy import select

from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.members import linking
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.member_models import MemberLinkRow
from tests.support.fake_ledger import FakeLedger
from tests.support.members import add_connection, add_levels, add_member
from tests.support.payments import add_sage500_connection, running_erp
from tests.support.sbc import SbcClient, connect_ledgerlink, running_sbc
from tests.support.web import make_user, sign_in

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _links(db: Database) -> list[tuple[str, str]]:
    with db.read() as session:
        rows = session.scalars(select(MemberLinkRow).where(MemberLinkRow.unlinked_at.is_(None)))
        return [(r.customer_id, r.customer_name) for r in rows]


def _rows(html: str, testid: str) -> list[str]:
    table = BeautifulSoup(html, "html.parser").find(attrs={"data-testid": testid})
    assert table is not None, f"no {testid} on the page"
    return [tr.get_text(" ", strip=True) for tr in table.select("tbody tr")]


def _errors(html: str) -> dict[str, str]:
    page = BeautifulSoup(html, "html.parser")
    return {
        str(p["data-testid"]).removeprefix("error-"): p.get_text(strip=True)
        for p in page.select("[data-testid^=error-]")
    }


def _link_ids(html: str, testid: str) -> list[str]:
    """The customer ids the *Link existing* buttons of a table would send."""
    table = BeautifulSoup(html, "html.parser").find(attrs={"data-testid": testid})
    assert table is not None
    return [str(i["value"]) for i in table.select("form input[name=customer_id]")]


@pytest.fixture
def sbc(
    client: TestClient, db: Database, settings: Settings, tmp_path: Path
) -> Iterator[tuple[int, SbcClient, str]]:
    """An SBC connection to the simulator, member M00001 (Jane Doe), an operator signed in
    (the CSRF token), and the simulator's API for arranging contacts."""
    runtime = Runtime(settings)
    add_levels(db)
    add_member(db, "M00001", "Jane", "Doe", email="jane@example.org")
    config = SbcConfig(auto_approve=True, rate_limit_per_minute=0, seed_people=3)
    with running_sbc(tmp_path / "sbc", config) as (base, used):
        cid = connect_ledgerlink(runtime, base)
        observer = SbcClient(base, used).connect()
        csrf = sign_in(client, make_user(db, Role.OPERATOR).email)
        try:
            yield cid, observer, csrf
        finally:
            observer.close()
            runtime.db.dispose()


def _contact(sbc: SbcClient, name: str, reference: str) -> str:
    body = {"name": name, "reference": reference, "contact_type_ids": ["CUSTOMER"]}
    return str(sbc.created("/contacts", "contact", body)["id"])


def test_a_search_finds_the_customer_the_suggestions_miss_and_links_it(
    client: TestClient, db: Database, sbc: tuple[int, SbcClient, str]
) -> None:
    cid, observer, csrf = sbc
    wanted = _contact(observer, "Doe Household Trust", "DHT-7")
    page = client.get("/members/M00001", params={"candidates_for": cid})
    assert page.status_code == 200
    assert wanted not in _link_ids(page.text, "candidates")  # not similar enough to suggest

    by_name = client.get("/members/M00001", params={"candidates_for": cid, "customer_q": "trust"})
    assert [r for r in _rows(by_name.text, "customer-search") if "DHT-7" in r]
    assert _link_ids(by_name.text, "customer-search") == [wanted]
    by_number = client.get("/members/M00001", params={"candidates_for": cid, "customer_q": "dht-7"})
    assert _link_ids(by_number.text, "customer-search") == [wanted]
    garbled = client.get("/members/M00001", params={"candidates_for": cid, "customer_q": "do\x00e"})
    assert garbled.status_code == 200
    assert "NUL" in _errors(garbled.text)["customer_q"]

    linked = client.post(
        "/members/M00001/link",
        data={"csrftoken": csrf, "connection_id": str(cid), "customer_id": wanted},
    )
    assert linked.status_code == 200, linked.text
    assert "is now linked to the existing" in linked.text
    assert _links(db) == [(wanted, "Doe Household Trust")]

    # a viewer is offered nothing to link with, and the server refuses them
    client.cookies.clear()
    viewer_csrf = sign_in(client, make_user(db, Role.VIEWER).email)
    page = client.get("/members/M00001", params={"candidates_for": cid, "customer_q": "trust"})
    assert page.status_code == 200
    soup = BeautifulSoup(page.text, "html.parser")
    assert soup.find(attrs={"data-testid": "link-other"}) is None
    assert not soup.select("form[action='/members/M00001/link']")
    refused = client.post(
        "/members/M00001/link",
        data={"csrftoken": viewer_csrf, "connection_id": str(cid), "customer_id": wanted},
    )
    assert refused.status_code == 403


def test_a_typed_customer_id_links_and_an_unknown_one_is_refused_naming_it(
    client: TestClient, db: Database, sbc: tuple[int, SbcClient, str]
) -> None:
    cid, observer, csrf = sbc
    wanted = _contact(observer, "Unrelated Name Ltd", "UNL-1")
    page = client.get("/members/M00001", params={"candidates_for": cid})
    assert BeautifulSoup(page.text, "html.parser").find("input", id="customer_id") is not None

    refused = client.post(
        "/members/M00001/link",
        data={"csrftoken": csrf, "connection_id": str(cid), "customer_id": "no-such-contact"},
    )
    assert refused.status_code == 404
    soup = BeautifulSoup(refused.text, "html.parser")
    beside = soup.find(attrs={"data-testid": "error-customer_id"})
    assert beside is not None, refused.text
    assert "no customer 'no-such-contact'" in beside.get_text()
    kept = soup.find("input", id="customer_id")
    assert kept is not None
    assert kept["value"] == "no-such-contact"
    assert _links(db) == []

    linked = client.post(
        "/members/M00001/link",
        data={"csrftoken": csrf, "connection_id": str(cid), "customer_id": f" {wanted} "},
    )
    assert linked.status_code == 200, linked.text
    assert _links(db) == [(wanted, "Unrelated Name Ltd")]

    # linked already: the typed id replaces the link (relink), the history keeps the old one
    other = _contact(observer, "Another Name Inc", "ANI-2")
    page = client.get("/members/M00001", params={"candidates_for": cid})
    form = BeautifulSoup(page.text, "html.parser").find(attrs={"data-testid": "link-by-id"})
    assert form is not None
    sent = {str(i["name"]): str(i.get("value", "")) for i in form.find_all("input")}
    relinked = client.post("/members/M00001/link", data={**sent, "customer_id": other})
    assert relinked.status_code == 200, relinked.text
    assert "relinked" in relinked.text
    assert _links(db) == [(other, "Another Name Inc")]


def test_sage500_customers_are_found_by_number_and_linked_by_their_key(
    client: TestClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    runtime = Runtime(settings)
    add_levels(db)
    add_member(db, "M00001", "Jane", "Doe")
    url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    with running_erp(url, 5):
        with runtime.db.transaction() as session:
            cid = add_sage500_connection(runtime, session, url).id
        csrf = sign_in(client, make_user(db, Role.OPERATOR).email)
        found = client.get(
            "/members/M00001", params={"candidates_for": cid, "customer_q": "C00003"}
        )
        assert found.status_code == 200, found.text
        [key] = _link_ids(found.text, "customer-search")
        assert "C00003" in _rows(found.text, "customer-search")[0]
        refused = client.post(
            "/members/M00001/link",
            data={"csrftoken": csrf, "connection_id": str(cid), "customer_id": "987654"},
        )
        assert refused.status_code == 404
        beside = BeautifulSoup(refused.text, "html.parser").find(
            attrs={"data-testid": "error-customer_id"}
        )
        assert beside is not None, refused.text
        assert "Sage 500 has no customer '987654'" in beside.get_text()
        linked = client.post(
            "/members/M00001/link",
            data={"csrftoken": csrf, "connection_id": str(cid), "customer_id": key},
        )
        assert linked.status_code == 200, linked.text
    assert [k for k, _ in _links(db)] == [key]
    runtime.db.dispose()


def test_a_search_names_the_member_a_customer_is_linked_to_already(db: Database) -> None:
    """Searching never offers a customer that belongs to another member (one customer, one
    member): the hit says whose it is instead, and exact numbers come first."""
    add_levels(db)
    add_member(db, "M00001", "Jane", "Doe")
    add_member(db, "M00002", "John", "Smith")
    ledger, connection_id = FakeLedger(), add_connection(db)
    ledger.add("C-10", "Smithfield Co-op", "office@smithfield.example")
    taken = ledger.add("C-1", "John Smith")
    exact = ledger.add("SMITH", "Mr J. Smith (old account)")
    asyncio.run(
        linking.link_existing(db, cli_principal(), ledger, "M00002", connection_id, taken.id)
    )
    found = asyncio.run(linking.search_customers(db, ledger, "M00001", connection_id, "smith"))
    assert found[0].customer.id == exact.id
    assert {c.customer.number: c.linked_to for c in found} == {
        "SMITH": None,
        "C-10": None,
        "C-1": "M00002",
    }
    assert asyncio.run(linking.search_customers(db, ledger, "M00001", connection_id, "zz")) == []
