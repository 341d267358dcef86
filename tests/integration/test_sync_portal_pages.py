"""Sync pages in-process: settings, schedules, a plan's records and their CSV, and who may
do what."""

from __future__ import annotations

from sqlalchemy import select

from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database
from ledgerlink.store.sync_models import SyncRecord, SyncSchedule, SyncSettings
from ledgerlink.sync import runs
from tests.support.members import add_connection
from tests.support.web import csrf_token, make_user, sign_in


def test_an_admin_sets_policies_and_a_schedule_and_sees_the_next_run(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    connection_id = add_connection(db)
    csrf = sign_in(client, make_user(db, Role.ADMIN).email)
    page = client.get("/sync")
    assert page.status_code == 200
    assert "Sync Now" in page.text
    assert "No schedule" in page.text
    saved = client.post(
        "/sync/settings",
        data={
            "csrftoken": csrf,
            "connection_id": connection_id,
            "data_sets": ["member_details", "balances"],
            "policy_email": "ledger_wins",
            "policy_city": "newest_wins",
            "overlap_seconds": "120",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    with db.read() as session:
        settings = session.get(SyncSettings, connection_id)
        assert settings is not None
        assert settings.data_sets == ["member_details", "balances"]
        assert settings.field_policies == {"email": "ledger_wins", "city": "newest_wins"}
        assert settings.overlap_seconds == 120
    added = client.post(
        "/sync/schedules",
        data={
            "csrftoken": csrf,
            "connection_id": connection_id,
            "kind": "weekly",
            "at": "02:30",
            "weekday": "sunday",
            "timezone": "America/New_York",
        },
        follow_redirects=False,
    )
    assert added.status_code == 303
    page = client.get("/sync")
    assert "every week: 30 2 * * 0" in page.text
    assert "America/New_York" in page.text
    bad = client.post(
        "/sync/schedules",
        data={"csrftoken": csrf, "connection_id": connection_id, "kind": "daily", "at": "2pm"},
    )
    assert bad.status_code == 422
    assert "HH:MM" in bad.text
    with db.read() as session:
        schedule_id = session.scalars(select(SyncSchedule.id)).one()
    assert (
        client.post(
            f"/sync/schedules/{schedule_id}/remove",
            data={"csrftoken": csrf},
            follow_redirects=False,
        ).status_code
        == 303
    )


def test_a_run_page_lists_records_exports_them_and_viewers_cannot_start_runs(
    client, db: Database
) -> None:  # type: ignore[no-untyped-def]
    connection_id = add_connection(db)
    with db.transaction() as session:
        run = runs.start(
            session, None, cli_principal(), connection_id, ["member_details"], dry_run=True
        )
        run.status = "planned"
        run.mapping_versions = {
            "member_to_sbc_contact": "member_to_sbc_contact@v2",
            "sbc_contact_to_member": "sbc_contact_to_member@package:0123456789ab",
        }
        session.add(
            SyncRecord(
                run_id=run.id,
                data_set="member_details",
                record_key="M00001",
                member_id=None,
                direction="to_ledger",
                action="update",
                status="planned",
                changes={
                    "email": {
                        "before": "old@example.org",
                        "after": "new@example.org",
                        "side": "ledger",
                    }
                },
                message="to ledger: email",
                fix="",
            )
        )
        run_id = run.id
    viewer = make_user(db, Role.VIEWER)
    sign_in(client, viewer.email)
    page = client.get(f"/sync/runs/{run_id}")
    assert page.status_code == 200
    assert "old@example.org → new@example.org" in page.text
    assert "Apply this plan" not in page.text  # viewers read only
    # which spec versions mapped the run, each a link to its spec
    assert (
        '<a href="/settings/mappings/member_to_sbc_contact">member_to_sbc_contact@v2</a>'
        in page.text
    )
    assert "sbc_contact_to_member@package:0123456789ab" in page.text
    token = {"Authorization": f"Bearer {viewer.token}"}
    described = client.get(f"/api/v1/sync/runs/{run_id}", headers=token).json()
    assert described["mapping_versions"]["member_to_sbc_contact"] == "member_to_sbc_contact@v2"
    exported = client.get(f"/sync/runs/{run_id}/records.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.strip().splitlines()
    assert lines[0].startswith("run,member,data_set")
    assert "M00001" in lines[1]
    assert "old@example.org -> new@example.org" in lines[1]
    assert client.post("/sync/run", data={"connection_id": connection_id}).status_code in (401, 403)


def test_the_api_starts_runs_reports_progress_and_validates_settings(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    connection_id = add_connection(db)
    operator_token = make_user(db, Role.OPERATOR).token
    admin_token = make_user(db, Role.ADMIN).token
    as_operator = {"Authorization": f"Bearer {operator_token}"}
    as_admin = {"Authorization": f"Bearer {admin_token}"}
    started = client.post(
        "/api/v1/sync/runs",
        headers=as_operator,
        json={"connection_id": connection_id, "data_sets": ["member_details"], "dry_run": True},
    )
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "queued"
    assert body["dry_run"] is True
    assert body["progress"] == {**body["progress"], "done": 0, "finished": False}
    again = client.post(
        "/api/v1/sync/runs", headers=as_operator, json={"connection_id": connection_id}
    )
    assert again.status_code == 202  # a plan does not block a run
    busy = client.post(
        "/api/v1/sync/runs", headers=as_operator, json={"connection_id": connection_id}
    )
    assert busy.status_code == 409
    assert "still queued" in busy.json()["detail"]
    listed = client.get("/api/v1/sync/runs", headers=as_operator).json()
    assert [r["id"] for r in listed][:2] == [again.json()["id"], body["id"]]
    refused = client.put(
        f"/api/v1/sync/settings/{connection_id}",
        headers=as_admin,
        json={"data_sets": ["member_details"], "field_policies": {"email": "coin_toss"}},
    )
    assert refused.status_code == 422
    assert "coin_toss" in refused.json()["detail"]
    assert (
        client.put(
            f"/api/v1/sync/settings/{connection_id}",
            headers=as_operator,
            json={"data_sets": ["balances"]},
        ).status_code
        == 403
    )


def test_the_member_page_shows_the_synchronised_balance_and_history(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from ledgerlink.store.member_models import MemberRow
    from ledgerlink.store.sync_models import MemberBalance, MemberTransaction
    from tests.support.members import add_levels, add_member

    connection_id = add_connection(db)
    add_levels(db)
    add_member(db, "M00042", "Ada", "Ledger", email="ada@example.org")
    with db.transaction() as session:
        member_id = session.scalars(select(MemberRow.id).where(MemberRow.number == "M00042")).one()
        session.add(
            MemberBalance(
                connection_id=connection_id,
                member_id=member_id,
                currency="USD",
                balance_minor=12050,
                outstanding_minor=12050,
                open_invoices=1,
                content_hash="x",
            )
        )
        session.add(
            MemberTransaction(
                connection_id=connection_id,
                ledger_id="inv-1",
                member_id=member_id,
                kind="invoice",
                number="SI-7",
                posted_on=date(2026, 11, 2),
                currency="USD",
                total_minor=12050,
                outstanding_minor=12050,
                status="unpaid",
                content_hash="y",
            )
        )
    sign_in(client, make_user(db, Role.VIEWER).email)
    page = client.get("/members/M00042")
    assert page.status_code == 200
    assert "balance $120.50" in page.text
    assert "1 open invoice(s)" in page.text
    assert "SI-7" in page.text
    assert "2026-11-02" in page.text


def test_re_applying_the_mapping_specs_is_planned_from_the_portal_and_the_api(
    client, db: Database
) -> None:  # type: ignore[no-untyped-def]
    connection_id = add_connection(db)
    operator_account = make_user(db, Role.OPERATOR)
    sign_in(client, operator_account.email)
    page = client.get("/sync")
    assert "Plan re-applying mapping specs" in page.text
    response = client.post(
        "/sync/run",
        data={
            "connection_id": connection_id,
            "dry_run": "1",
            "remap": "1",
            "csrftoken": csrf_token(client),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    run_id = int(response.headers["location"].rsplit("/", 1)[1])
    described = client.get(f"/sync/runs/{run_id}")
    assert "Re-applies the member → customer mapping spec" in described.text
    headers = {"Authorization": f"Bearer {operator_account.token}"}
    started = client.post(
        "/api/v1/sync/runs",
        headers=headers,
        json={"connection_id": connection_id, "data_sets": ["balances"], "remap": True},
    ).json()
    assert started["remap"] is True
    assert started["data_sets"] == ["Member details"]  # re-applying specs is member details
