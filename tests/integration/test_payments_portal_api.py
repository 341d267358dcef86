"""Payments through the portal and the API: the figures, the queue and its actions,
dispute import with a bad row, and charging a stored card once per idempotency key."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ledgerlink.identity.roles import Role
from ledgerlink.settings import Settings
from ledgerlink.store.models import AuditEntry
from ledgerlink.store.payment_models import PaymentEvent
from tests.support.payments import PaymentsWorld, profiles, sage500_world
from tests.support.web import make_user, sign_in


@pytest.fixture
def world(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path) as made:
        yield made


def _first_open(world: PaymentsWorld) -> tuple[str, dict]:  # type: ignore[type-arg]
    customer = profiles(world)[0]
    return customer, world.open_invoices(int(customer[1:]))[0]


def test_charging_a_stored_card_twice_with_one_key_charges_once(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    token = make_user(world.runtime.db, Role.OPERATOR).token
    viewer = make_user(world.runtime.db, Role.VIEWER).token
    _, invoice = _first_open(world)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "charge-0001-abc"}
    body = {"invoice_number": invoice["TranID"]}
    first = client.post("/api/v1/payments/charges", json=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "approved"
    again = client.post("/api/v1/payments/charges", json=body, headers=headers)
    assert again.json()["repeated"] is True
    assert again.json()["transaction_id"] == first.json()["transaction_id"]
    world.process()
    assert world.invoice(invoice["TranID"])["Balance"] == 0
    with world.runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(PaymentEvent)) == 1
        charged = session.scalars(select(PaymentEvent)).one()
    # PayTrace's answer names no card: the payment shows the profile's card that was charged
    assert re.fullmatch(r"x+\d{4}", charged.payload["masked_card"]), charged.payload
    assert len(world.erp_payments()) == 1

    no_key = client.post(
        "/api/v1/payments/charges", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert no_key.status_code == 428
    paid = client.post(
        "/api/v1/payments/charges",
        json=body,
        headers={**headers, "Idempotency-Key": "charge-0002-abc"},
    )
    assert paid.status_code == 422
    assert paid.json()["errors"][0]["field"] == "invoice_number"
    assert "nothing left to pay" in paid.json()["detail"]
    refused = client.post(
        "/api/v1/payments/charges",
        json=body,
        headers={"Authorization": f"Bearer {viewer}", "Idempotency-Key": "charge-0003-abc"},
    )
    assert refused.status_code == 403


def test_an_operator_fixes_an_exception_from_the_portal_and_it_is_audited(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    customer, invoice = _first_open(world)
    sale = world.pay(customer, "11.00", "NO-SUCH-INV")
    world.poll()
    world.process()
    operator = make_user(world.runtime.db, Role.OPERATOR)
    csrf = sign_in(client, operator.email)
    page = client.get("/payments/exceptions")
    assert "Invoice NO-SUCH-INV is not in Sage 500" in page.text
    found = world.exception_for(sale)
    assert found is not None
    wrong = client.post(
        f"/payments/exceptions/{found.id}",
        data={"csrftoken": csrf, "action": "apply_to_invoice", "invoice_number": ""},
    )
    assert wrong.status_code == 422
    assert "Enter the invoice number" in wrong.text
    done = client.post(
        f"/payments/exceptions/{found.id}",
        data={
            "csrftoken": csrf,
            "action": "apply_to_invoice",
            "invoice_number": invoice["TranID"],
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    world.process()
    assert Decimal(world.invoice(invoice["TranID"])["Balance"]) == Decimal(
        invoice["Balance"]
    ) - Decimal("11.00")
    assert "No open exception" in client.get("/payments/exceptions").text
    detail = client.get(f"/payments/events/{world.event(sale).id}")
    assert "paytrace:" in detail.text
    assert "applied to invoice" in detail.text
    with world.runtime.db.read() as session:
        actions = set(session.scalars(select(AuditEntry.action)))
    assert {"payment.exception", "payment.exception.apply_to_invoice", "payment.receipt"} <= actions
    figures = client.get("/payments")
    assert 'data-testid="payments-posted">1<' in figures.text


def test_the_api_lists_and_ignores_exceptions_and_imports_disputes_row_by_row(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    token = make_user(world.runtime.db, Role.OPERATOR).token
    auth = {"Authorization": f"Bearer {token}"}
    customer, invoice = _first_open(world)
    declined = world.paytrace(
        "/v1/transactions/sale/by_customer",
        {"customer_id": customer, "amount": "0.29", "invoice_id": invoice["TranID"]},
    )
    assert client.post("/api/v1/payments/poll", headers=auth).status_code == 200
    world.process()
    [row] = client.get("/api/v1/payments/exceptions", headers=auth).json()
    assert row["reason_code"] == "declined"
    assert row["transaction_id"] == str(declined["transaction_id"])
    assert row["actions"] == ["ignore"]  # no money was collected: nothing to apply
    url = f"/api/v1/payments/exceptions/{row['id']}/actions"
    no_note = client.post(url, json={"action": "ignore"}, headers=auth)
    assert no_note.status_code == 422
    assert no_note.json()["errors"][0]["field"] == "note"
    ok = client.post(
        url, json={"action": "ignore", "note": "customer paid by cheque"}, headers=auth
    )
    assert ok.status_code == 200
    assert client.get("/api/v1/payments/exceptions", headers=auth).json() == []
    dashboard = client.get("/api/v1/payments/dashboard", headers=auth).json()
    assert dashboard["exceptions_open"] == 0
    assert dashboard["payments_today"] == 1

    report = (
        "case_number,transaction_id,dispute_amount,status,invoice_id\r\n"
        "CB1,not-a-number,10.00,open,X\r\n"
        "CB2,180009999,-3,open,X\r\n"
        f"CB3,{declined['transaction_id']},0.29,open,{invoice['TranID']}\r\n"
    )
    imported = client.post(
        "/api/v1/payments/disputes",
        files={"report": ("disputes.csv", report.encode(), "text/csv")},
        headers=auth,
    ).json()
    assert imported["new_events"] == 1
    assert [(p["line"], p["field"]) for p in imported["problems"]] == [
        (2, "transaction_id"),
        (3, "dispute_amount"),
    ]
