"""The REST API: problem+json errors that name fields, write-only secrets, audit."""

from __future__ import annotations

from sqlalchemy import select

from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database
from ledgerlink.store.models import AuditEntry, ConnectionSecret
from tests.support.web import make_user


def _admin_headers(db: Database) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_user(db, Role.ADMIN).token}"}


def test_invalid_input_is_a_problem_document_naming_the_field(client, db) -> None:
    response = client.post(
        "/api/v1/users", json={"email": "a@example.org", "role": "boss"}, headers=_admin_headers(db)
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    fields = {e["field"] for e in body["errors"]}
    assert {"password", "role"} <= fields
    assert body["status"] == 422
    assert body["title"] == "Invalid request"


def test_a_business_rule_error_names_the_field_and_the_fix(client, db) -> None:
    response = client.post(
        "/api/v1/users",
        json={"email": "a@example.org", "password": "short", "role": "viewer"},
        headers=_admin_headers(db),
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "password", "message": "password must be at least 12 characters long"}
    ]


def test_unknown_records_are_404_problems(client, db) -> None:
    response = client.get("/api/v1/connections/999", headers=_admin_headers(db))
    assert response.status_code == 404
    assert "There is no connection 999" in response.json()["detail"]


def test_connection_secrets_are_write_only_and_encrypted(client, db) -> None:
    headers = _admin_headers(db)
    created = client.post(
        "/api/v1/connections",
        headers=headers,
        json={
            "kind": "paytrace",
            "name": "PayTrace sandbox",
            "settings": {"username": "demo", "integrator_id": "9999"},
            "secrets": {"password": "s3cret-Paytrace-pw"},
        },
    )
    assert created.status_code == 201, created.text
    assert "s3cret-Paytrace-pw" not in created.text
    assert created.json()["secrets"]["password"]["set"] is True
    listed = client.get("/api/v1/connections", headers=headers)
    assert "s3cret-Paytrace-pw" not in listed.text
    with db.read() as session:
        stored = session.scalars(select(ConnectionSecret.ciphertext)).all()
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert last is not None
        last_action, last_after = last.action, str(last.after)
    assert stored
    assert all("s3cret" not in c for c in stored)
    assert last_action == "connection.created"
    assert "s3cret-Paytrace-pw" not in last_after


def test_a_secret_that_does_not_belong_to_the_kind_is_refused(client, db) -> None:
    response = client.post(
        "/api/v1/connections",
        headers=_admin_headers(db),
        json={"kind": "sbc", "name": "SBC", "settings": {}, "secrets": {"password": "x"}},
    )
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "secrets.password"
    assert "client_secret" in error["message"]


def test_bad_settings_name_the_setting(client, db) -> None:
    response = client.post(
        "/api/v1/connections",
        headers=_admin_headers(db),
        json={"kind": "sbc", "name": "SBC", "settings": {"business_id": "not-hex"}},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "settings.business_id"


def test_changes_are_audited_with_before_and_after(client, db) -> None:
    headers = _admin_headers(db)
    cid = client.post(
        "/api/v1/connections",
        headers=headers,
        json={"kind": "sage500", "name": "ERP", "settings": {"company_id": "SOA"}},
    ).json()["id"]
    client.patch(
        f"/api/v1/connections/{cid}",
        headers=headers,
        json={
            "settings": {"company_id": "XYZ"},
            "secrets": {"database_url": "mssql+pymssql://u:pw@h/db"},
        },
    )
    entries = client.get("/api/v1/audit?action=connection.updated", headers=headers).json()
    assert entries[0]["before"]["settings"]["company_id"] == "SOA"
    assert entries[0]["after"]["settings"]["company_id"] == "XYZ"
    assert "pw@h" not in str(entries[0])
    assert client.get("/api/v1/audit/verify", headers=headers).json()["ok"] is True


def test_openapi_document_is_served_to_signed_in_users(client, db) -> None:
    assert client.get("/api/v1/openapi.json").status_code == 401
    headers = {"Authorization": f"Bearer {make_user(db, Role.VIEWER).token}"}
    spec = client.get("/api/v1/openapi.json", headers=headers).json()
    assert "/api/v1/connections" in spec["paths"]


def test_readiness_reports_database_and_jobs(client) -> None:
    body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["jobs"]["ok"] is True


def test_metrics_need_a_token_and_count_requests(client, db) -> None:
    assert client.get("/metrics").status_code == 401
    headers = {"Authorization": f"Bearer {make_user(db, Role.VIEWER).token}"}
    client.get("/healthz")
    body = client.get("/metrics", headers=headers).text
    assert 'ledgerlink_http_requests_total{method="GET",route="/healthz",status="200"}' in body
