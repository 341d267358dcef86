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


def _preview(client, headers: dict[str, str], spec: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/mappings/{spec}/preview", headers=headers, json={"source": "recent", "limit": 5}
    )


def test_previews_over_recent_sbc_contacts_and_paytrace_profiles(
    client, db, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from ledgerlink.sandbox.sbc import SbcConfig
    from tests.support.sbc import connect_ledgerlink, running_sbc

    admin = make_user(db, Role.ADMIN)
    headers = {"Authorization": f"Bearer {admin.token}"}
    runtime = client.app.state.runtime
    with running_sbc(tmp_path / "sbc", SbcConfig(rate_limit_per_minute=0, seed_people=20)) as (
        base,
        _,
    ):
        connect_ledgerlink(runtime, base)
        response = _preview(client, headers, "sbc_contact_to_member")
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert len(rows) == 5
    assert all(row["output"]["member_number"] == row["input"]["reference"] for row in rows)
    assert "most recently changed contacts" in response.json()["source"]

    with serve_in_thread(create_app(tmp_path / "pt", config=CONFIG)) as base:
        client.post(
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
        response = _preview(client, headers, "paytrace_customer_to_sage500_customer")
    assert response.status_code == 200, response.text
    assert len(response.json()["rows"]) == 5
    assert all(row["output"]["CustID"] for row in response.json()["rows"])


def test_previews_over_recent_sage500_customers_and_members(client, db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    from ledgerlink import demo
    from ledgerlink.sandbox import sage500

    admin = make_user(db, Role.ADMIN)
    headers = {"Authorization": f"Bearer {admin.token}"}
    assert _preview(client, headers, "member_to_sbc_contact").status_code == 409  # no members
    with db.transaction() as session:
        demo.ensure_members(session, count=12)
    response = _preview(client, headers, "member_to_sbc_contact")
    assert response.status_code == 200, response.text
    assert all(
        row["output"]["reference"] == row["input"]["member_number"]
        for row in response.json()["rows"]
    )

    url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    engine = create_engine(url)
    sage500.create_schema(engine)
    sage500.seed(engine, sage500.Sage500Config(seed_people=15))
    engine.dispose()
    created = client.post(
        "/api/v1/connections",
        headers=headers,
        json={
            "kind": "sage500",
            "name": "Sage 500",
            "settings": {"company_id": "SOA"},
            "secrets": {"database_url": url},
        },
    )
    assert created.status_code == 201, created.text
    response = _preview(client, headers, "sage500_customer_to_member")
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert len(rows) == 5
    assert all(row["input"]["CustID"].startswith("C") for row in rows)
