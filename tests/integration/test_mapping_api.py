"""Mapping specs through the API: versions, audit, rollback, previews that write nothing,
and validation problems that name the file, line and field."""

from __future__ import annotations

from sqlalchemy import func, select

from ledgerlink.identity.roles import Role
from ledgerlink.mapping.loader import packaged_text
from ledgerlink.store.db import Database
from ledgerlink.store.mapping_models import MappingVersion
from ledgerlink.store.models import AuditEntry
from tests.support.web import make_user

RECEIPT = "paytrace_transaction_to_sage500_cash_receipt"
SHIPPED = packaged_text(RECEIPT) or ""
CHANGED = SHIPPED.replace("gl_account: 1010-00}", "gl_account: 1012-00}")
SALE = {
    "transaction_id": 7,
    "transaction_type": "SALE",
    "amount": "10.00",
    "customer_id": "C00001",
    "invoice_id": "INV-1",
    "created": {"at": "3/14/2026 10:00:00 AM"},
}


def _headers(db: Database, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_user(db, role).token}"}


def _counts(db: Database) -> tuple[int, int]:
    with db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(MappingVersion)) or 0,
            session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        )


def test_the_shipped_specs_are_listed_with_their_versions(client, db) -> None:
    listed = client.get("/api/v1/mappings", headers=_headers(db, Role.VIEWER)).json()
    by_name = {s["name"]: s for s in listed}
    assert by_name[RECEIPT]["origin"] == "package"
    assert by_name[RECEIPT]["version"].startswith(f"{RECEIPT}@package:")
    assert by_name[RECEIPT]["source"] == "paytrace.transaction"
    assert by_name["payment_status"]["kind"] == "table"
    # every shipped spec says where ledgerlink runs it
    assert [n for n, s in by_name.items() if s["used_by"] == "Previews"] == []
    assert "Member details sync" in by_name["member_to_sbc_contact"]["used_by"]


def test_saving_creates_an_audited_version_and_rollback_restores_an_earlier_one(client, db) -> None:
    admin = _headers(db, Role.ADMIN)
    first = client.put(
        f"/api/v1/mappings/{RECEIPT}",
        json={"yaml": CHANGED, "comment": "new card account"},
        headers=admin,
    )
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    assert first.json()["ref"] == f"{RECEIPT}@v1"
    second = client.put(f"/api/v1/mappings/{RECEIPT}", json={"yaml": SHIPPED}, headers=admin)
    assert second.json()["version"] == 2

    rolled = client.post(f"/api/v1/mappings/{RECEIPT}/rollback", json={"version": 1}, headers=admin)
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"] == 3
    assert rolled.json()["rolled_back_from"] == 1

    detail = client.get(f"/api/v1/mappings/{RECEIPT}", headers=admin).json()
    assert detail["yaml"] == CHANGED
    assert detail["version"] == f"{RECEIPT}@v3"
    assert [(v["version"], v["is_active"]) for v in detail["history"]] == [
        (3, True),
        (2, False),
        (1, False),
    ]

    with db.read() as session:
        entries = [
            (e.action, e.before, e.after)
            for e in session.scalars(
                select(AuditEntry)
                .where(AuditEntry.entity_type == "mapping")
                .order_by(AuditEntry.seq)
            )
        ]
    assert [a for a, _, _ in entries] == ["mapping.saved", "mapping.saved", "mapping.rolled_back"]
    (_, before0, after0), _, (_, before2, after2) = entries
    assert before0["version"].startswith(f"{RECEIPT}@package:")
    assert after0["comment"] == "new card account"
    assert after0["yaml"] == CHANGED
    assert before2["version"] == f"{RECEIPT}@v2"
    assert after2["rolled_back_from"] == 1

    to_default = client.post(
        f"/api/v1/mappings/{RECEIPT}/rollback", json={"version": 0}, headers=admin
    )
    assert to_default.json()["version"] == 4
    assert client.get(f"/api/v1/mappings/{RECEIPT}", headers=admin).json()["yaml"] == SHIPPED


def test_an_invalid_spec_is_refused_naming_file_line_and_field(client, db) -> None:
    broken = SHIPPED.replace("expr: vars.amount_text", "expr: target_amont(vars.amount)", 1)
    admin = _headers(db, Role.ADMIN)
    before = _counts(db)
    response = client.put(f"/api/v1/mappings/{RECEIPT}", json={"yaml": broken}, headers=admin)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["file"] == f"{RECEIPT}.yaml (submitted)"
    assert error["field"] == "fields.TranAmt.expr"
    assert error["line"] == broken.splitlines().index("    expr: target_amont(vars.amount)") + 1
    assert "unknown function 'target_amont'" in error["message"]
    assert _counts(db) == before  # nothing stored, nothing audited


def test_a_preview_runs_a_draft_over_samples_and_writes_nothing(client, db) -> None:
    operator = _headers(db, Role.OPERATOR)
    before = _counts(db)
    response = client.post(
        f"/api/v1/mappings/{RECEIPT}/preview",
        json={
            "yaml": CHANGED,
            "records": [SALE, {**SALE, "amount": 10.5}, {"transaction_type": "TIP"}],
        },
        headers=operator,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == "draft"
    assert body["records"] == 3
    assert body["failed"] == 1
    first, float_amount, bad = body["rows"]
    assert first["input"]["amount"] == "10.00"
    assert first["output"]["GLAcctNo"] == "1012-00"
    assert first["errors"] == []
    assert float_amount["output"]["TranAmt"] == "10.50"  # a JSON number read exactly
    assert {e["field"] for e in bad["errors"]} >= {"vars.kind", "CustID", "TranDate"}
    assert all(e["message"] for e in bad["errors"])
    assert _counts(db) == before


def test_a_preview_without_samples_uses_the_shipped_ones_and_links(client, db) -> None:
    response = client.post(
        "/api/v1/mappings/paytrace_transaction_to_sbc_contact_payment/preview",
        json={"links": [{"paytrace": "C00001", "sbc_contact_id": "abc123"}]},
        headers=_headers(db, Role.OPERATOR),
    )
    body = response.json()
    assert body["version"].startswith("paytrace_transaction_to_sbc_contact_payment@package:")
    assert body["tables"]["payment_status"].startswith("payment_status@package:")
    assert body["rows"][0]["output"]["contact_id"] == "abc123"


def test_recent_records_are_refused_for_kinds_no_connector_provides(client, db) -> None:
    response = client.post(
        "/api/v1/mappings/sbc_contact_to_member/preview",
        json={"source": "recent"},
        headers=_headers(db, Role.OPERATOR),
    )
    assert response.status_code == 409
    assert "upload sample records" in response.json()["detail"]


def test_an_operator_may_preview_but_not_save(client, db) -> None:
    response = client.put(
        f"/api/v1/mappings/{RECEIPT}", json={"yaml": SHIPPED}, headers=_headers(db, Role.OPERATOR)
    )
    assert response.status_code == 403


def test_a_shared_table_change_that_breaks_a_spec_is_refused(client, db) -> None:
    table = (packaged_text("payment_status") or "").replace(
        "values: [sage500, sbc, action]", "values: [sage500, action]"
    )
    table = table.replace(" sbc: PAID,", "").replace(" sbc: UNPAID,", "")
    response = client.put(
        "/api/v1/mappings/payment_status", json={"yaml": table}, headers=_headers(db, Role.ADMIN)
    )
    assert response.status_code == 422
    assert any(
        "payment_status has no column 'sbc'" in e["message"] for e in response.json()["errors"]
    )


def test_an_unknown_spec_is_not_found(client, db) -> None:
    response = client.get("/api/v1/mappings/nope", headers=_headers(db, Role.VIEWER))
    assert response.status_code == 404


def test_a_preview_over_the_newest_members_shows_each_beside_its_contact(client, db) -> None:
    from tests.support.members import add_levels, add_member

    add_levels(db)
    add_member(db, "M70001", "Ada", "Lovelace", email="Ada@Example.org")
    add_member(db, "M70002", "Alan", "Turing", email="alan@example.org")
    headers = _headers(db, Role.OPERATOR)
    before = _counts(db)
    response = client.post(
        "/api/v1/mappings/member_to_sbc_contact/preview",
        json={"source": "recent", "limit": 5},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    rows = {row["input"]["member_number"]: row for row in response.json()["rows"]}
    assert set(rows) == {"M70001", "M70002"}
    ada = rows["M70001"]
    assert ada["output"]["name"] == "Ada Lovelace"
    assert ada["output"]["reference"] == "M70001"
    assert ada["output"]["email"] == "Ada@example.org"  # the mailbox part as the member typed it
    assert _counts(db) == before  # a preview writes nothing
