"""Adding and editing members in the portal (issue 19, "Members in the portal"): the
API's rules, errors beside the field with the input kept, audited like the API, and only
for operators and administrators."""

from __future__ import annotations

from typing import Any

from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy import select

from ledgerlink.identity.roles import Role
from ledgerlink.members.registry import get_member, load_member
from ledgerlink.store.db import Database
from ledgerlink.store.models import AuditEntry
from tests.support.members import add_levels, add_member
from tests.support.web import make_user, sign_in

NEW = {
    "member_number": "M00077",
    "account_type": "corporate",
    "membership_level": "gold",
    "status": "active",
    "organisation": "Acme Widgets",
    "email": "billing@acme.example",
    "phone": "212-555-0199",
    "address_line1": "1 Main Street",
    "city": "Springfield",
    "region": "IL",
    "postal_code": "62701",
    "country": "US",
}


def _as(client: TestClient, db: Database, role: Role) -> str:
    return sign_in(client, make_user(db, role).email)


def _typed(html: str) -> dict[str, str]:
    """What the form on the page holds: each input's value and each select's choice."""
    form = BeautifulSoup(html, "html.parser").find("form", id="member-form")
    assert form is not None, "no member form on the page"
    typed: dict[str, str] = {}
    for field in form.find_all(["input", "select"]):
        name = str(field.get("name") or "")
        if field.name == "select":
            chosen = field.find("option", selected=True)
            typed[name] = str(chosen.get("value", "")) if chosen else ""
        else:
            typed[name] = str(field.get("value", ""))
    return typed


def _errors(html: str) -> dict[str, str]:
    page = BeautifulSoup(html, "html.parser")
    return {
        str(p["data-testid"]).removeprefix("error-"): p.get_text(strip=True)
        for p in page.select("[data-testid^=error-]")
    }


def _audit(db: Database, action: str) -> list[AuditEntry]:
    with db.read() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_an_operator_adds_a_corporate_member_on_a_level_from_the_registry(
    client: TestClient, db: Database
) -> None:
    add_levels(db)
    csrf = _as(client, db, Role.OPERATOR)
    form = client.get("/members/new")
    assert form.status_code == 200
    levels = BeautifulSoup(form.text, "html.parser").select("#membership_level option")
    assert {str(o["value"]) for o in levels} == {"", "standard", "gold"}

    saved = client.post("/members/new", data={"csrftoken": csrf, **NEW}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].startswith("/members/M00077")
    page = client.get(saved.headers["location"])
    assert "Member added." in page.text
    with db.read() as session:
        member = load_member(session, get_member(session, "M00077"))
    assert (member.account_type.value, member.level_code, member.organisation) == (
        "corporate",
        "gold",
        "Acme Widgets",
    )
    [entry] = _audit(db, "member.created")
    assert entry.actor.endswith("operator@example.org")


def test_a_refused_field_shows_beside_it_and_what_was_typed_stays(
    client: TestClient, db: Database
) -> None:
    add_levels(db)
    csrf = _as(client, db, Role.OPERATOR)
    typed = {**NEW, "organisation": "", "email": "billing@", "city": "Springfield"}
    refused = client.post("/members/new", data={"csrftoken": csrf, **typed})
    assert refused.status_code == 422
    errors = _errors(refused.text)
    assert set(errors) == {"organisation", "email"}
    assert "corporate members need the organisation's name" in errors["organisation"]
    kept = _typed(refused.text)
    assert {k: kept[k] for k in typed} == typed
    assert "Something went wrong" not in refused.text
    with db.read() as session:
        assert (
            session.scalar(select(AuditEntry).where(AuditEntry.action == "member.created")) is None
        )


BAD: list[dict[str, Any]] = [
    {"membership_level": "platinum"},
    {"account_type": "club"},
    {"status": "retired"},
    {"organisation": "x" * 201},
    {"email": "billing@", "phone": "12"},
    {"member_number": "M 77/?"},
    {"organisation": "Acme\x00Widgets"},
    {"country": "Atlantis"},
]


def test_the_form_refuses_exactly_what_the_api_refuses(client: TestClient, db: Database) -> None:
    add_levels(db)
    admin = make_user(db, Role.ADMIN)
    csrf = sign_in(client, admin.email)
    for change in BAD:
        body = {**NEW, **change}
        api = client.post(
            "/api/v1/members", json=body, headers={"authorization": f"Bearer {admin.token}"}
        )
        assert api.status_code == 422, api.text
        api_fields = {e["field"] for e in api.json()["errors"]}
        portal = client.post("/members/new", data={"csrftoken": csrf, **body})
        assert portal.status_code == 422, change
        assert set(_errors(portal.text)) == api_fields, change
    assert _audit(db, "member.created") == []


def test_a_duplicate_member_number_is_refused_beside_the_number(
    client: TestClient, db: Database
) -> None:
    add_levels(db)
    add_member(db, "M00077", "Jane", "Doe")
    csrf = _as(client, db, Role.OPERATOR)
    refused = client.post("/members/new", data={"csrftoken": csrf, **NEW})
    assert refused.status_code == 409
    assert "already exists" in _errors(refused.text)["member_number"]
    assert _typed(refused.text)["organisation"] == "Acme Widgets"


def test_an_edit_is_saved_and_audited_before_and_after_like_the_api(
    client: TestClient, db: Database
) -> None:
    add_levels(db)
    add_member(db, "M00001", "Jane", "Doe", email="jane@example.org")
    csrf = _as(client, db, Role.ADMIN)
    form = client.get("/members/M00001/edit")
    assert form.status_code == 200
    typed = _typed(form.text)
    assert (typed["first_name"], typed["membership_level"]) == ("Jane", "standard")
    typed.update(membership_level="gold", last_name="Doe-Smith", csrftoken=csrf)
    saved = client.post("/members/M00001/edit", data=typed, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    assert "Changes saved." in client.get(saved.headers["location"]).text
    [entry] = _audit(db, "member.updated")
    assert entry.actor.endswith("admin@example.org")
    assert (entry.before["membership_level"], entry.after["membership_level"]) == (
        "standard",
        "gold",
    )
    assert entry.after["last_name"] == "Doe-Smith"
    again = client.post("/members/M00001/edit", data=typed, follow_redirects=False)
    assert "Nothing changed" in client.get(again.headers["location"]).text
    assert len(_audit(db, "member.updated")) == 1


def test_an_edit_with_a_refused_field_changes_nothing_and_keeps_the_input(
    client: TestClient, db: Database
) -> None:
    add_levels(db)
    add_member(db, "M00001", "Jane", "Doe", email="jane@example.org")
    csrf = _as(client, db, Role.OPERATOR)
    typed = _typed(client.get("/members/M00001/edit").text)
    typed.update(first_name="", email="jane@", csrftoken=csrf, member_number="M99999")
    refused = client.post("/members/M00001/edit", data=typed)
    assert refused.status_code == 422
    assert set(_errors(refused.text)) == {"first_name", "email"}
    assert _typed(refused.text)["email"] == "jane@"
    with db.read() as session:
        member = load_member(session, get_member(session, "M00001"))
    assert (member.first_name, member.email) == ("Jane", "jane@example.org")
    assert _audit(db, "member.updated") == []


def test_a_viewer_sees_no_member_forms_and_the_server_refuses_them(
    client: TestClient, db: Database
) -> None:
    add_levels(db)
    add_member(db, "M00001", "Jane", "Doe")
    csrf = _as(client, db, Role.VIEWER)
    assert "/members/new" not in client.get("/members").text
    assert "/members/M00001/edit" not in client.get("/members/M00001").text
    assert client.get("/members/new").status_code == 403
    assert client.get("/members/M00001/edit").status_code == 403
    assert client.post("/members/new", data={"csrftoken": csrf, **NEW}).status_code == 403
    typed = {**NEW, "member_number": "M00001", "first_name": "Eve", "csrftoken": csrf}
    assert client.post("/members/M00001/edit", data=typed).status_code == 403
    with db.read() as session:
        assert session.scalar(select(AuditEntry).where(AuditEntry.actor.contains("viewer"))) is None


def test_the_member_form_without_its_csrf_token_is_refused(
    client: TestClient, db: Database
) -> None:
    add_levels(db)
    _as(client, db, Role.OPERATOR)
    assert "/members/new" in client.get("/members").text
    refused = client.post("/members/new", data=NEW)
    assert refused.status_code == 403
    assert _audit(db, "member.created") == []


def test_a_card_number_typed_into_the_form_is_refused_and_never_shown_back(
    client: TestClient, db: Database
) -> None:
    add_levels(db)
    csrf = _as(client, db, Role.OPERATOR)
    typed = {**NEW, "phone": "4111 1111 1111 1111", "organisation": "", "city": "Springfield"}
    refused = client.post("/members/new", data={"csrftoken": csrf, **typed})
    assert refused.status_code == 422
    errors = _errors(refused.text)
    assert "card number" in errors["phone"]
    assert "organisation" not in errors  # the card number is checked first, alone (as the API)
    assert "4111" not in refused.text
    kept = _typed(refused.text)
    assert (kept["phone"], kept["city"]) == ("", "Springfield")
