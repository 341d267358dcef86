"""Forged and out-of-role requests to every reconciliation route are refused.

With real scope ids, break ids and valid bodies (so nothing is refused for a malformed
request before the check under test): no session and no token, a viewer (and an operator
on what only admins do), a portal form without its CSRF token or with another one, and a
break of one scope resolved or read through another scope's address. After each refusal
the break is still open, no run was made and no period closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ledgerlink.identity.roles import Role
from ledgerlink.recon.scopes import ensure_scope
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection
from ledgerlink.store.recon_models import (
    ReconBatch,
    ReconBreak,
    ReconPeriod,
    ReconRun,
    ReconTransaction,
)
from tests.support.recon import AS_OF, OFX, seed_scope
from tests.support.web import make_user, sign_in

PERIOD = "2026-11"
RULES = "name: recon_rules\nversion: 1\n"


@dataclass
class Scopes:
    a: int
    b: int
    a_break: str = "missing_receipt:5002"
    b_break: str = "missing_receipt:6001"
    tokens: dict[Role, str] = field(default_factory=dict)


def _other_scope(db: Database) -> int:
    """A second PayTrace + ledger pair with its own unreceipted sale 6001 in batch 2001."""
    with db.transaction() as session:
        gateway = Connection(kind="paytrace", name="PayTrace West", settings={})
        ledger = Connection(kind="sbc", name="SBC West", settings={}, is_active=True)
        session.add_all([gateway, ledger])
        session.flush()
        scope = ensure_scope(session, gateway.id, ledger.id, actor="test")
        session.add_all(
            [
                ReconTransaction(
                    scope_id=scope.id,
                    txn_id="6001",
                    kind="sale",
                    status="approved",
                    amount_minor=4000,
                    currency="USD",
                    created_on=date(2026, 11, 12),
                    batch_number="2001",
                    card_brand="visa",
                ),
                ReconBatch(
                    scope_id=scope.id,
                    batch_number="2001",
                    settled_on=date(2026, 11, 13),
                    gross_minor=4000,
                    fees_minor=0,
                    chargebacks_withheld_minor=0,
                    net_minor=4000,
                    currency="USD",
                    transaction_count=1,
                ),
            ]
        )
        return scope.id


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def scopes(client: TestClient, db: Database) -> Scopes:
    found = Scopes(a=seed_scope(db), b=_other_scope(db))
    for role in (Role.VIEWER, Role.OPERATOR, Role.ADMIN):
        found.tokens[role] = make_user(db, role).token
    for scope_id in (found.a, found.b):
        ran = client.post(
            f"/api/v1/recon/scopes/{scope_id}/runs",
            json={"as_of": AS_OF.isoformat(), "read": False},
            headers=_auth(found.tokens[Role.OPERATOR]),
        )
        assert ran.status_code == 200, ran.text
    with db.read() as session:
        open_ids = set(session.scalars(select(ReconBreak.break_id)))
    assert {found.a_break, found.b_break} <= open_ids
    return found


def _state(db: Database) -> tuple[int, int, list[tuple[int, str, str]]]:
    """Runs made, periods closed, and every break's scope, id and status."""
    with db.read() as session:
        runs = session.scalar(select(func.count()).select_from(ReconRun)) or 0
        periods = session.scalar(select(func.count()).select_from(ReconPeriod)) or 0
        breaks = sorted(
            (row.scope_id, row.break_id, row.status) for row in session.scalars(select(ReconBreak))
        )
    return runs, periods, breaks


def _api_changes(s: Scopes) -> list[tuple[Role, str, str, dict[str, Any]]]:
    """Every state-changing API route: the least role it needs, method, path, request."""
    base = f"/api/v1/recon/scopes/{s.a}"
    return [
        (Role.OPERATOR, "POST", f"{base}/runs", {"json": {"read": False}}),
        (
            Role.OPERATOR,
            "POST",
            f"{base}/breaks/{s.a_break}/actions",
            {"json": {"action": "explain", "reason": "cash sale"}},
        ),
        (
            Role.OPERATOR,
            "POST",
            f"{base}/statements",
            {"files": {"statement": ("nov.ofx", OFX, "application/x-ofx")}},
        ),
        (Role.ADMIN, "POST", f"{base}/periods/{PERIOD}/close", {"json": {"note": "signed"}}),
        (Role.ADMIN, "POST", f"{base}/periods/{PERIOD}/reopen", {"json": {"reason": "late"}}),
        (
            Role.ADMIN,
            "PATCH",
            f"{base}/settings",
            {"json": {"fee_schedule": {"visa": {"percent_bp": 180, "fixed_minor": 10}}}},
        ),
        (Role.ADMIN, "PUT", "/api/v1/recon/rules", {"json": {"yaml": RULES, "reason": "x"}}),
        (
            Role.ADMIN,
            "POST",
            "/api/v1/recon/rules/rollback",
            {"json": {"version": 0, "reason": "x"}},
        ),
    ]


def _api_reads(s: Scopes) -> list[str]:
    base = f"/api/v1/recon/scopes/{s.a}"
    return [
        "/api/v1/recon/scopes",
        f"{base}/summary",
        f"{base}/runs",
        f"{base}/breaks",
        f"{base}/breaks/export?format=csv",
        f"{base}/breaks/{s.a_break}",
        f"{base}/batches",
        f"{base}/batches/1001",
        f"{base}/statements",
        f"{base}/periods",
        f"{base}/settings",
        "/api/v1/recon/rules",
        "/api/v1/recon/rules/versions",
    ]


def _forms(s: Scopes) -> list[tuple[Role, str, dict[str, Any]]]:
    """Every portal form: the least role it needs, its action, its fields and files."""
    base = f"/recon/{s.a}"
    return [
        (Role.OPERATOR, f"{base}/run", {"data": {"period": PERIOD}}),
        (
            Role.OPERATOR,
            f"{base}/statements",
            {
                "data": {"period": PERIOD},
                "files": {"statement": ("nov.ofx", OFX, "application/x-ofx")},
            },
        ),
        (
            Role.OPERATOR,
            f"{base}/breaks/{s.a_break}",
            {"data": {"period": PERIOD, "action": "explain", "reason": "cash sale"}},
        ),
        (Role.ADMIN, f"{base}/periods/{PERIOD}/close", {"data": {"note": "signed"}}),
        (Role.ADMIN, f"{base}/periods/{PERIOD}/reopen", {"data": {"reason": "late"}}),
        (Role.ADMIN, "/recon/rules", {"data": {"yaml": RULES, "reason": "x"}}),
        (Role.ADMIN, "/recon/rules/rollback", {"data": {"version": "0", "reason": "x"}}),
    ]


def _pages(s: Scopes) -> list[str]:
    base = f"/recon/{s.a}"
    return [
        "/recon",
        base,
        f"{base}/export?period={PERIOD}&format=csv",
        f"{base}/breaks/{s.a_break}",
        f"{base}/batches/1001",
        "/recon/rules",
    ]


def _with_token(request: dict[str, Any], token: str | None) -> dict[str, Any]:
    """A form request with ``token`` as its csrftoken field (none when None), put first
    as the portal's own forms do."""
    data = {k: v for k, v in request.get("data", {}).items() if k != "csrftoken"}
    if token is not None:
        data = {"csrftoken": token, **data}
    return {**request, "data": data}


def _is_problem(response: Any, status: int) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]


def test_no_token_and_no_session_is_refused_everywhere(
    client: TestClient, db: Database, scopes: Scopes
) -> None:
    before = _state(db)
    for _role, method, path, request in _api_changes(scopes):
        _is_problem(client.request(method, path, follow_redirects=False, **request), 401)
    for path in _api_reads(scopes):
        _is_problem(client.get(path, follow_redirects=False), 401)
    for path in _pages(scopes):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")
    for _role, path, request in _forms(scopes):
        # Even a form carrying a (stolen) csrftoken cookie and field gets nowhere.
        client.get("/login")
        token = client.cookies.get("csrftoken")
        response = client.post(path, follow_redirects=False, **_with_token(request, token))
        assert response.status_code in (401, 403), (path, response.status_code)
    bad_token = _auth("llk_not-a-token")
    for _role, method, path, request in _api_changes(scopes):
        _is_problem(client.request(method, path, headers=bad_token, **request), 401)
    assert _state(db) == before


def test_a_viewer_and_an_operator_on_admin_actions_get_a_403_problem(
    client: TestClient, db: Database, scopes: Scopes
) -> None:
    before = _state(db)
    for needed, method, path, request in _api_changes(scopes):
        weaker = [Role.VIEWER] + ([Role.OPERATOR] if needed is Role.ADMIN else [])
        for role in weaker:
            response = client.request(method, path, headers=_auth(scopes.tokens[role]), **request)
            _is_problem(response, 403)
            assert f"needs the {needed.value} role" in response.json()["detail"]
    for path in _api_reads(scopes):  # what a viewer may do
        response = client.get(path, headers=_auth(scopes.tokens[Role.VIEWER]))
        assert response.status_code == 200, (path, response.text)
    assert _state(db) == before


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_a_signed_in_user_cannot_submit_a_form_above_their_role(
    client: TestClient, db: Database, scopes: Scopes, role: Role
) -> None:
    account = make_user(db, role, email=f"portal-{role.value}@example.org")
    csrf = sign_in(client, account.email)
    before = _state(db)
    for needed, path, request in _forms(scopes):
        if role is Role.OPERATOR and needed is not Role.ADMIN:
            continue
        response = client.post(path, follow_redirects=False, **_with_token(request, csrf))
        assert response.status_code == 403, (path, response.status_code)
        assert f"needs the {needed.value} role" in response.text
    assert _state(db) == before


def test_forms_and_cookie_api_calls_without_the_right_csrf_token_are_refused(
    client: TestClient, db: Database, scopes: Scopes
) -> None:
    admin = make_user(db, Role.ADMIN, email="portal-admin@example.org")
    csrf = sign_in(client, admin.email)
    before = _state(db)
    for _needed, path, request in _forms(scopes):
        for token in (None, "forged" + csrf[6:], ""):
            response = client.post(path, follow_redirects=False, **_with_token(request, token))
            assert response.status_code == 403, (path, token, response.status_code)
    for _needed, method, path, request in _api_changes(scopes):
        # The session cookie alone is not enough for the API either: the header must match.
        for headers in ({}, {"x-csrftoken": "forged" + csrf[6:]}):
            response = client.request(method, path, headers=headers, **request)
            assert response.status_code == 403, (path, headers, response.status_code)
    assert _state(db) == before
    # The same admin with the right token gets through: the refusals above were CSRF's.
    done = client.post(
        f"/recon/{scopes.a}/breaks/{scopes.a_break}",
        data={"csrftoken": csrf, "period": PERIOD, "action": "explain", "reason": "cash"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert "explained" in done.headers["location"]


@pytest.mark.parametrize(
    "body",
    [
        {"action": "explain", "reason": "not ours"},
        {"action": "assign", "user": "operator@example.org"},
        {"action": "post_receipt", "reason": "post it"},
        {"action": "reverse_duplicate", "receipt_id": "R1"},
    ],
)
def test_a_break_of_another_scope_cannot_be_resolved_through_this_scope(
    client: TestClient, db: Database, scopes: Scopes, body: dict[str, str]
) -> None:
    before = _state(db)
    operator = _auth(scopes.tokens[Role.OPERATOR])
    response = client.post(
        f"/api/v1/recon/scopes/{scopes.a}/breaks/{scopes.b_break}/actions",
        json=body,
        headers=operator,
    )
    _is_problem(response, 404)
    assert scopes.b_break in response.json()["detail"]
    account = make_user(db, Role.OPERATOR, email="portal-operator@example.org")
    csrf = sign_in(client, account.email)
    form = client.post(
        f"/recon/{scopes.a}/breaks/{scopes.b_break}",
        data={"csrftoken": csrf, "period": PERIOD, **body},
        follow_redirects=False,
    )
    assert form.status_code == 303
    assert "problem=" in form.headers["location"]
    assert _state(db) == before


def test_a_break_or_batch_of_another_scope_is_not_shown_through_this_scope(
    client: TestClient, db: Database, scopes: Scopes
) -> None:
    viewer = _auth(scopes.tokens[Role.VIEWER])
    base = f"/api/v1/recon/scopes/{scopes.a}"
    _is_problem(client.get(f"{base}/breaks/{scopes.b_break}", headers=viewer), 404)
    _is_problem(client.get(f"{base}/batches/2001", headers=viewer), 404)
    listed = client.get(f"{base}/breaks", params={"status": "all"}, headers=viewer).json()
    assert scopes.b_break not in {row["break_id"] for row in listed}
    account = make_user(db, Role.VIEWER, email="portal-viewer@example.org")
    sign_in(client, account.email)
    assert client.get(f"/recon/{scopes.a}/breaks/{scopes.b_break}").status_code == 404
    assert client.get(f"/recon/{scopes.a}/batches/2001").status_code == 404


def test_a_rules_spec_that_cannot_run_is_refused_as_the_reconciliation_rules_spec(
    client: TestClient, scopes: Scopes
) -> None:
    response = client.put(
        "/api/v1/recon/rules",
        json={"yaml": "name: recon_rules\nversion: 1\ntolerances: [1\n", "reason": "try"},
        headers=_auth(scopes.tokens[Role.ADMIN]),
    )
    _is_problem(response, 422)
    problem = response.json()
    assert problem["title"] == "Invalid reconciliation rules spec"
    assert "mapping" not in problem["title"].lower()
    assert "mapping" not in problem["type"]
    assert problem["errors"][0]["line"]
