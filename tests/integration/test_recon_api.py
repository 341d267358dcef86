"""Reconciliation over the API: viewers read, operators run, import and resolve, admins
close periods; bad input is a problem naming the field (and the line of a statement)."""

from __future__ import annotations

import io
import zipfile

from fastapi.testclient import TestClient
from sqlalchemy import select

from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database
from ledgerlink.store.models import AuditEntry
from tests.support.recon import AS_OF, OFX, seed_scope
from tests.support.web import make_user


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _run(client: TestClient, scope_id: int, token: str) -> dict:  # type: ignore[type-arg]
    response = client.post(
        f"/api/v1/recon/scopes/{scope_id}/runs",
        json={"as_of": AS_OF.isoformat(), "read": False},
        headers=_auth(token),
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_an_operator_runs_imports_and_explains_and_a_viewer_reads(
    client: TestClient, db: Database
) -> None:
    scope_id = seed_scope(db)
    operator = make_user(db, Role.OPERATOR).token
    viewer = make_user(db, Role.VIEWER).token
    assert (
        client.post(
            f"/api/v1/recon/scopes/{scope_id}/runs", json={"read": False}, headers=_auth(viewer)
        ).status_code
        == 403
    )
    run = _run(client, scope_id, operator)
    assert run["counts"]["open_breaks"] >= 1, run

    upload = client.post(
        f"/api/v1/recon/scopes/{scope_id}/statements",
        files={"statement": ("nov.ofx", OFX, "application/x-ofx")},
        headers=_auth(operator),
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["lines"] == 2
    again = client.post(
        f"/api/v1/recon/scopes/{scope_id}/statements",
        files={"statement": ("nov.ofx", OFX, "application/x-ofx")},
        headers=_auth(operator),
    )
    assert again.json()["duplicate"] is True
    _run(client, scope_id, operator)

    summary = client.get(f"/api/v1/recon/scopes/{scope_id}/summary", headers=_auth(viewer)).json()
    types = {t["type"] for t in summary["breaks_by_type"]}
    assert {"missing_receipt", "unknown_credit"} <= types
    assert summary["matched_count"] >= 1

    breaks = client.get(
        f"/api/v1/recon/scopes/{scope_id}/breaks",
        params={"type": "unknown_credit"},
        headers=_auth(viewer),
    ).json()
    assert len(breaks) == 1
    break_id = breaks[0]["break_id"]
    detail = client.get(
        f"/api/v1/recon/scopes/{scope_id}/breaks/{break_id}", headers=_auth(viewer)
    ).json()
    assert detail["deposits"][0]["amount_minor"] == 50000
    assert (
        client.post(
            f"/api/v1/recon/scopes/{scope_id}/breaks/{break_id}/actions",
            json={"action": "explain", "reason": "x"},
            headers=_auth(viewer),
        ).status_code
        == 403
    )
    refused = client.post(
        f"/api/v1/recon/scopes/{scope_id}/breaks/{break_id}/actions",
        json={"action": "explain"},
        headers=_auth(operator),
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "reason"
    done = client.post(
        f"/api/v1/recon/scopes/{scope_id}/breaks/{break_id}/actions",
        json={"action": "explain", "reason": "owner's capital injection"},
        headers=_auth(operator),
    )
    assert done.status_code == 200, done.text
    explained = client.get(
        f"/api/v1/recon/scopes/{scope_id}/breaks",
        params={"status": "explained"},
        headers=_auth(viewer),
    ).json()
    assert [b["reason"] for b in explained] == ["owner's capital injection"]

    batch = client.get(
        f"/api/v1/recon/scopes/{scope_id}/batches/1001", headers=_auth(viewer)
    ).json()
    assert [t["txn_id"] for t in batch["transactions"]] == ["5001", "5002"]
    assert batch["transactions"][0]["receipts"][0]["receipt_id"] == "R1"
    assert batch["deposits"][0]["amount_minor"] == 9700


def test_the_breaks_export_as_csv_and_xlsx(client: TestClient, db: Database) -> None:
    scope_id = seed_scope(db)
    operator = make_user(db, Role.OPERATOR).token
    _run(client, scope_id, operator)
    csv_response = client.get(
        f"/api/v1/recon/scopes/{scope_id}/breaks/export",
        params={"format": "csv"},
        headers=_auth(operator),
    )
    assert csv_response.status_code == 200
    assert csv_response.text.splitlines()[0].startswith("break_id,type,")
    assert "missing_receipt:5002" in csv_response.text
    xlsx = client.get(
        f"/api/v1/recon/scopes/{scope_id}/breaks/export",
        params={"format": "xlsx"},
        headers=_auth(operator),
    )
    assert xlsx.status_code == 200
    with zipfile.ZipFile(io.BytesIO(xlsx.content)) as book:
        assert "missing_receipt:5002" in book.read("xl/sharedStrings.xml").decode()


def test_a_malformed_statement_is_a_problem_naming_the_line(
    client: TestClient, db: Database
) -> None:
    scope_id = seed_scope(db)
    operator = make_user(db, Role.OPERATOR).token
    broken = OFX.replace(b"<TRNAMT>500.00", b"<TRNAMT>five hundred")
    response = client.post(
        f"/api/v1/recon/scopes/{scope_id}/statements",
        files={"statement": ("bad.ofx", broken, "application/x-ofx")},
        headers=_auth(operator),
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "file"
    listed = client.get(f"/api/v1/recon/scopes/{scope_id}/statements", headers=_auth(operator))
    assert listed.json() == []


def test_only_an_admin_closes_and_reopens_a_period(client: TestClient, db: Database) -> None:
    scope_id = seed_scope(db)
    operator = make_user(db, Role.OPERATOR).token
    admin = make_user(db, Role.ADMIN).token
    _run(client, scope_id, operator)
    url = f"/api/v1/recon/scopes/{scope_id}/periods/2026-11"
    assert client.post(f"{url}/close", headers=_auth(operator)).status_code == 403
    blocked = client.post(f"{url}/close", headers=_auth(admin))
    assert blocked.status_code == 422
    assert "open break" in blocked.json()["detail"]
    for row in client.get(f"/api/v1/recon/scopes/{scope_id}/breaks", headers=_auth(admin)).json():
        client.post(
            f"/api/v1/recon/scopes/{scope_id}/breaks/{row['break_id']}/actions",
            json={"action": "explain", "reason": "agreed with the bank"},
            headers=_auth(operator),
        )
    closed = client.post(f"{url}/close", json={"note": "November signed off"}, headers=_auth(admin))
    assert closed.status_code == 200, closed.text
    assert closed.json()["signed_off_by"] == "admin@example.org"
    late = client.post(
        f"/api/v1/recon/scopes/{scope_id}/statements",
        files={"statement": ("nov.ofx", OFX, "application/x-ofx")},
        headers=_auth(operator),
    )
    assert late.status_code == 422
    assert "closed" in late.json()["detail"]
    assert (
        client.post(f"{url}/reopen", json={"reason": ""}, headers=_auth(admin)).status_code == 422
    )
    reopened = client.post(f"{url}/reopen", json={"reason": "late deposit"}, headers=_auth(admin))
    assert reopened.json()["status"] == "open"
    with db.read() as session:
        actions = list(
            session.scalars(
                select(AuditEntry.action).where(AuditEntry.action.like("recon.period.%"))
            )
        )
    assert actions == ["recon.period.close", "recon.period.reopen"]
