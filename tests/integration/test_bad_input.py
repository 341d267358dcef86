"""Bad input is a 4xx naming the field, never a 500: integers beyond 64 bits, NUL and
control characters in text, a NUL in a member CSV, a bare CR in a dispute report, and
YAML that is too deep or expands without bound."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from ledgerlink.connections_config import import_yaml
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database
from ledgerlink.store.member_models import MemberRow
from ledgerlink.store.models import ApiToken, Connection
from ledgerlink.vault import Vault, new_key
from tests.support.members import HEADER, add_levels
from tests.support.web import make_user

TOO_BIG = 2**63  # one past PostgreSQL's and SQLite's largest integer


def _admin(db: Database) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_user(db, Role.ADMIN).token}"}


def _refusals(client: Any, headers: dict[str, str], calls: list[tuple[Any, ...]]) -> list[str]:
    """Each call as "METHOD path -> status field" when it was not a 422 naming ``field``."""
    wrong = []
    for method, url, field, extra in calls:
        response = client.request(method, url, headers=headers, **extra)
        named = (
            [e["field"] for e in response.json().get("errors", [])]
            if response.headers.get("content-type") == "application/problem+json"
            else []
        )
        if response.status_code != 422 or field not in named:
            wrong.append(f"{method} {url} -> {response.status_code} {named or response.text[:80]}")
    return wrong


def test_ids_beyond_64_bits_in_paths_are_refused_naming_the_field(client, db: Database) -> None:
    n = TOO_BIG
    calls = [
        ("PATCH", f"/api/v1/users/{n}", "user_id", {"json": {}}),
        ("GET", f"/api/v1/users/{n}/tokens", "user_id", {}),
        ("POST", f"/api/v1/users/{n}/tokens", "user_id", {"json": {"name": "ci"}}),
        ("DELETE", f"/api/v1/tokens/{n}", "token_id", {}),
        ("GET", f"/api/v1/connections/{n}", "connection_id", {}),
        ("PATCH", f"/api/v1/connections/{n}", "connection_id", {"json": {}}),
        ("DELETE", f"/api/v1/connections/{n}", "connection_id", {}),
        ("POST", f"/api/v1/connections/{n}/test", "connection_id", {}),
        ("GET", f"/api/v1/member-links/bulk/{n}", "run_id", {}),
        ("POST", f"/api/v1/member-links/bulk/{n}/retry", "run_id", {}),
        ("GET", f"/api/v1/sync/runs/{n}", "run_id", {}),
        ("GET", f"/api/v1/sync/runs/{n}/records", "run_id", {}),
        ("POST", f"/api/v1/sync/runs/{n}/cancel", "run_id", {}),
        ("POST", f"/api/v1/sync/runs/{n}/apply", "run_id", {}),
        ("POST", f"/api/v1/sync/runs/{n}/retry", "run_id", {}),
        ("PUT", f"/api/v1/sync/settings/{n}", "connection_id", {"json": {"data_sets": []}}),
        ("GET", f"/api/v1/payments/events/{n}", "event_id", {}),
        (
            "POST",
            f"/api/v1/payments/exceptions/{n}/actions",
            "exception_id",
            {"json": {"action": "retry"}},
        ),
    ]
    assert _refusals(client, _admin(db), calls) == []


def test_integers_beyond_64_bits_in_bodies_and_queries_are_refused_naming_the_field(
    client, db: Database
) -> None:
    n = TOO_BIG
    calls = [
        ("POST", "/api/v1/sync/runs", "connection_id", {"json": {"connection_id": n}}),
        ("POST", "/api/v1/members/M1/links", "connection_id", {"json": {"connection_id": n}}),
        ("POST", "/api/v1/members/M1/unlink", "connection_id", {"json": {"connection_id": n}}),
        ("POST", "/api/v1/member-links/bulk", "connection_id", {"json": {"connection_id": n}}),
        ("GET", f"/api/v1/members?connection_id={n}", "connection_id", {}),
        ("GET", f"/api/v1/members?offset={n}", "offset", {}),
        ("GET", f"/api/v1/members/M1/candidates?connection_id={n}", "connection_id", {}),
        ("GET", f"/api/v1/audit?before_seq={n}", "before_seq", {}),
        (
            "POST",
            "/api/v1/mappings/payment_status/rollback",
            "version",
            {"json": {"version": n}},
        ),
        (
            "POST",
            "/api/v1/payments/charges",
            "connection_id",
            {
                "json": {"invoice_number": "INV1", "connection_id": n},
                "headers": {"Idempotency-Key": "abcdefgh12"},
            },
        ),
        (
            "PUT",
            "/api/v1/sync/settings/1",
            "overlap_seconds",
            {"json": {"data_sets": [], "overlap_seconds": n}},
        ),
    ]
    headers = _admin(db)
    wrong = []
    for method, url, field, extra in calls:
        more_headers = extra.pop("headers", {})
        wrong += _refusals(client, {**headers, **more_headers}, [(method, url, field, extra)])
    assert wrong == []


def test_a_nul_in_a_token_name_is_refused_naming_the_field(client, db: Database) -> None:
    headers = _admin(db)
    me = client.get("/api/v1/me", headers=headers).json()["user_id"]
    response = client.post(
        f"/api/v1/users/{me}/tokens", json={"name": "ci\x00runner"}, headers=headers
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "name"
    assert "NUL" in error["message"]
    with db.read() as session:
        assert session.scalars(select(ApiToken.name)).all() == ["tests"]


def test_a_nul_in_a_connection_name_or_setting_is_refused_naming_the_field(
    client, db: Database
) -> None:
    headers = _admin(db)
    named = client.post(
        "/api/v1/connections",
        json={"kind": "paytrace", "name": "Pay\x00Trace", "settings": {}},
        headers=headers,
    )
    setting = client.post(
        "/api/v1/connections",
        json={"kind": "paytrace", "name": "PayTrace", "settings": {"username": "de\x00mo"}},
        headers=headers,
    )
    assert named.status_code == 422, named.text
    assert [e["field"] for e in named.json()["errors"]] == ["name"]
    assert setting.status_code == 422, setting.text
    assert [e["field"] for e in setting.json()["errors"]] == ["settings.username"]
    with db.read() as session:
        assert session.scalars(select(Connection)).all() == []


def test_control_characters_in_member_fields_are_refused_naming_the_field(
    client, db: Database
) -> None:
    headers = _admin(db)
    add_levels(db, "standard")
    body = {"member_number": "M1", "first_name": "Ja\x00ne", "last_name": "Doe"}
    response = client.post(
        "/api/v1/members", json={**body, "membership_level": "standard"}, headers=headers
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["first_name"]
    escape = client.get("/api/v1/members", params={"q": "Doe\x1b[2J"}, headers=headers)
    assert escape.status_code == 422, escape.text
    assert [e["field"] for e in escape.json()["errors"]] == ["q"]


def test_a_nul_in_a_member_csv_is_a_row_error_and_the_other_rows_import(
    client, db: Database
) -> None:
    headers = _admin(db)
    add_levels(db, "standard")
    csv_text = (
        f"{HEADER}\r\n"
        "M1,Jane,Doe,,jane@example.org,,personal,standard,active,,,,,,\r\n"
        "M2,Jo\x00hn,Roe,,john@example.org,,personal,standard,active,,,,,,\r\n"
        "M3,Ann,Poe,,ann@example.org,,personal,standard,active,,,,,,\r\n"
    )
    response = client.post(
        "/api/v1/members/import",
        files={"file": ("members.csv", csv_text.encode(), "text/csv")},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["created"] == 2
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(3, "first_name")]
    assert "NUL" in report["errors"][0]["reason"]
    with db.read() as session:
        assert sorted(session.scalars(select(MemberRow.number))) == ["M1", "M3"]


def test_a_bare_cr_in_a_dispute_report_is_read_as_a_line_break(client, db: Database) -> None:
    headers = _admin(db)
    report = (
        "case_number,transaction_id,dispute_amount,status\r\n"
        "CB1,180000001,10.00,open\r"  # an old Mac line ending
        "CB2,not-a-number,5.00,open\r\n"
    )
    response = client.post(
        "/api/v1/payments/disputes",
        files={"report": ("disputes.csv", report.encode(), "text/csv")},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["rows"] == 2
    assert result["new_events"] == 1
    assert [(p["line"], p["field"]) for p in result["problems"]] == [(3, "transaction_id")]


def test_a_nul_or_a_non_object_in_a_dispute_report_is_a_row_problem(client, db: Database) -> None:
    headers = _admin(db)
    report = (
        "case_number,transaction_id,dispute_amount,status\n"
        "CB\x001,180000001,10.00,open\n"
        "CB2,180000002,5.00,open\n"
    )
    csv_response = client.post(
        "/api/v1/payments/disputes",
        files={"report": ("disputes.csv", report.encode(), "text/csv")},
        headers=headers,
    )
    json_response = client.post(
        "/api/v1/payments/disputes",
        files={"report": ("disputes.json", b'{"disputes": [1, "x"]}', "application/json")},
        headers=headers,
    )
    assert csv_response.status_code == 200, csv_response.text
    assert csv_response.json()["new_events"] == 1
    assert [(p["line"], p["field"]) for p in csv_response.json()["problems"]] == [
        (2, "case_number")
    ]
    assert json_response.status_code == 422, json_response.text
    assert json_response.json()["errors"][0]["field"] == "file"


def test_a_deeply_nested_mapping_spec_is_refused_with_its_line(client, db: Database) -> None:
    headers = _admin(db)
    spec = "name: payment_status\nkind: table\nextra:\n  " + "[" * 5000 + "]" * 5000 + "\n"
    response = client.put("/api/v1/mappings/payment_status", json={"yaml": spec}, headers=headers)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["line"] == 4
    assert "nested" in error["message"]


def test_a_yaml_alias_bomb_in_a_preview_is_refused_quickly(client, db: Database) -> None:
    headers = _admin(db)
    bomb = 'lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefg":
        bomb += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    spec = "name: payment_status\nkind: table\n" + bomb
    assert len(spec) < 1700
    started = time.monotonic()
    response = client.post(
        "/api/v1/mappings/payment_status/preview", json={"yaml": spec}, headers=headers
    )
    assert time.monotonic() - started < 2
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["line"] is not None
    assert "alias" in error["message"]


def test_connection_settings_import_refuses_deep_yaml_with_its_line(db: Database) -> None:
    vault = Vault([new_key()])
    text = (
        "connections:\n  - name: deep\n    kind: paytrace\n    settings:\n"
        "      username: " + "{a: " * 5000 + "b" + "}" * 5000 + "\n"
    )
    with db.transaction() as session:
        report = import_yaml(session, vault, cli_principal(), text)
    assert report.created == []
    [error] = report.errors
    assert error.field == "file"
    assert error.line == 5
    assert "nested" in error.message


def test_a_portal_page_with_an_id_beyond_64_bits_is_not_a_server_error(
    client, db: Database
) -> None:
    from tests.support.web import sign_in

    account = make_user(db, Role.ADMIN)
    sign_in(client, account.email)
    page = client.get(f"/connections/{TOO_BIG}")
    assert page.status_code in (404, 422), page.status_code
    assert "connection" in page.text.lower() or "9223372036854775808" in page.text


def test_a_nul_in_a_portal_token_or_connection_name_is_refused_naming_the_field(
    client, db: Database
) -> None:
    from tests.support.web import sign_in

    account = make_user(db, Role.ADMIN)
    csrf = sign_in(client, account.email)
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {account.token}"})
    token = client.post(
        "/settings/tokens",
        data={"user_id": me.json()["user_id"], "name": "ci\x00", "csrftoken": csrf},
    )
    connection = client.post(
        "/connections", data={"kind": "paytrace", "name": "Pay\x00Trace", "csrftoken": csrf}
    )
    assert token.status_code == 422, token.status_code
    assert "name: contains a NUL" in token.text
    assert connection.status_code == 422, connection.status_code
    assert "name: contains a NUL" in connection.text
    with db.read() as session:
        assert session.scalars(select(Connection)).all() == []
        assert session.scalars(select(ApiToken.name)).all() == ["tests"]
