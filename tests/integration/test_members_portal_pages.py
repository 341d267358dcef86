"""Member pages in the portal, in-process: import with row errors, search, detail, bulk."""

from __future__ import annotations

from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database
from tests.support.members import add_connection, add_levels, csv_bytes
from tests.support.web import make_user, sign_in

ROWS = [
    "M00001,Jane,Doe,,jane@example.org,212-555-0123,personal,standard,active,,,,,,",
    "M00002,John,Smith,,john@,,personal,standard,active,,,,,,",
    "M00003,Ann,Lee,,ann@example.org,,personal,gold,active,,,,,,",
]


def _operator(client, db: Database) -> str:  # type: ignore[no-untyped-def]
    account = make_user(db, Role.OPERATOR, "ops@example.org")
    return sign_in(client, account.email)


def test_import_page_shows_each_bad_row_and_the_good_rows_land(client, db: Database) -> None:
    add_levels(db)
    csrf = _operator(client, db)
    response = client.post(
        "/members/import",
        data={"csrftoken": csrf},
        files={"file": ("members.csv", csv_bytes(*ROWS), "text/csv")},
    )
    assert response.status_code == 200, response.text
    assert "2 new, 0 updated, 0 unchanged, 1 rejected" in response.text
    assert "john@" in response.text or "M00002" in response.text
    listing = client.get("/members", params={"q": "doe"})
    assert "M00001" in listing.text
    assert "M00003" not in listing.text
    detail = client.get("/members/M00001")
    assert detail.status_code == 200
    assert "Never linked." in detail.text


def test_members_without_account_offer_bulk_create_and_link(client, db: Database) -> None:
    add_levels(db)
    csrf = _operator(client, db)
    client.post(
        "/members/import",
        data={"csrftoken": csrf},
        files={"file": ("members.csv", csv_bytes(ROWS[0], ROWS[2]), "text/csv")},
    )
    connection_id = add_connection(db)
    page = client.get("/members", params={"without_account": "1"})
    assert "Create and link selected" in page.text
    assert "2 member(s) without a customer account" in page.text
    started = client.post(
        "/members/bulk",
        data={"csrftoken": csrf, "connection_id": str(connection_id), "member": ["M00001"]},
        follow_redirects=False,
    )
    assert started.status_code == 303
    progress = client.get(started.headers["location"])
    assert "0 of 1" in progress.text
    assert 'hx-trigger="every 1s"' in progress.text


def test_an_unknown_member_is_a_404_page(client, db: Database) -> None:
    _operator(client, db)
    assert client.get("/members/NOPE").status_code == 404
