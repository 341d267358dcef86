"""A mapping preview over the most recent real PayTrace transactions (from the simulator)."""

from __future__ import annotations

from pathlib import Path

from ledgerlink.identity.roles import Role
from ledgerlink.sandbox.paytrace import PayTraceConfig, create_app
from tests.support.asgi_server import serve_in_thread
from tests.support.web import make_user

CONFIG = PayTraceConfig(seed_people=20)


def test_a_preview_runs_over_the_newest_paytrace_transactions(client, db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    headers = {"Authorization": f"Bearer {admin.token}"}
    with serve_in_thread(create_app(tmp_path / "pt", config=CONFIG)) as base:
        created = client.post(
            "/api/v1/connections",
            headers=headers,
            json={
                "kind": "paytrace",
                "name": "PayTrace sandbox",
                "settings": {
                    "username": CONFIG.username,
                    "integrator_id": CONFIG.integrator_id,
                    "api_base_url": base,
                },
                "secrets": {"password": CONFIG.password},
            },
        )
        assert created.status_code == 201, created.text
        response = client.post(
            "/api/v1/mappings/paytrace_transaction_to_sage500_cash_receipt/preview",
            headers=headers,
            json={"source": "recent", "limit": 5},
        )
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert len(rows) == 5
    ids = [int(row["input"]["transaction_id"]) for row in rows]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert all(row["output"]["ImportReference"].startswith("paytrace:") for row in rows)
    assert "most recent transactions of PayTrace sandbox" in response.json()["source"]


def test_without_a_paytrace_connection_the_preview_says_what_is_missing(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    response = client.post(
        "/api/v1/mappings/paytrace_transaction_to_sage500_cash_receipt/preview",
        headers={"Authorization": f"Bearer {admin.token}"},
        json={"source": "recent"},
    )
    assert response.status_code == 409
    assert "no paytrace connection" in response.json()["detail"]
