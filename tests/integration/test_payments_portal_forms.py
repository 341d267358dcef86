"""The payments pages as an operator works them: a refused charge keeps what was typed
and says beside the field what to do; the exceptions queue offers only the actions that
fit the reason (and the server refuses the others); a resolved exception shows how it was
resolved, not the reason it once had."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ledgerlink.identity.roles import Role
from ledgerlink.settings import Settings
from ledgerlink.store.payment_models import PaymentCharge
from tests.support.payments import PaymentsWorld, profiles, sage500_world
from tests.support.web import make_user, sign_in


@pytest.fixture
def world(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path, people=4) as made:
        yield made


def _field_error(page: str, field: str) -> str:
    found = re.search(rf'data-testid="error-{field}">([^<]*)<', page)
    assert found is not None, f"no error shown beside {field}"
    return found.group(1)


def _value(page: str, field: str) -> str:
    found = re.search(rf'<input id="{field}" name="{field}"[^>]*value="([^"]*)"', page)
    assert found is not None, f"no {field} input"
    return found.group(1)


def test_a_charge_for_an_unknown_invoice_keeps_the_form_and_says_why_beside_the_invoice(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    csrf = sign_in(client, make_user(world.runtime.db, Role.OPERATOR).email)
    form = client.get("/payments/charge")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form.text)
    assert key is not None
    page = client.post(
        "/payments/charge",
        data={
            "csrftoken": csrf,
            "idempotency_key": key.group(1),
            "invoice_number": "0000009999-IN",
            "amount": "25.00",
        },
    )
    assert page.status_code == 422
    assert "Something went wrong" not in page.text
    assert "Invoice 0000009999-IN is not in Sage 500" in _field_error(page.text, "invoice_number")
    assert 'aria-describedby="invoice_number-error"' in page.text
    assert _value(page.text, "invoice_number") == "0000009999-IN"
    assert _value(page.text, "amount") == "25.00"
    with world.runtime.db.read() as session:  # nothing was sent or stored
        assert session.scalar(select(func.count()).select_from(PaymentCharge)) == 0


def test_a_charge_for_a_customer_with_no_stored_card_says_what_to_do(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    customer = profiles(world)[1]
    invoice = world.open_invoices(int(customer[1:]))[0]["TranID"]
    world.paytrace("/v1/customer/delete", {"customer_id": customer})
    csrf = sign_in(client, make_user(world.runtime.db, Role.OPERATOR).email)
    page = client.post(
        "/payments/charge",
        data={
            "csrftoken": csrf,
            "idempotency_key": "portal-form-key-0001",
            "invoice_number": invoice,
            "amount": "10.00",
        },
    )
    assert page.status_code == 422
    said = _field_error(page.text, "invoice_number")
    assert "has no card stored with PayTrace" in said
    assert "ask them to save one" in said
    assert _value(page.text, "invoice_number") == invoice
    assert _value(page.text, "amount") == "10.00"
    # nothing was charged under the form's key: it stays, for sending again once saved
    assert 'value="portal-form-key-0001"' in page.text


def test_an_amount_that_is_no_amount_is_shown_beside_the_amount(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    customer = profiles(world)[0]
    invoice = world.open_invoices(int(customer[1:]))[0]["TranID"]
    csrf = sign_in(client, make_user(world.runtime.db, Role.OPERATOR).email)
    page = client.post(
        "/payments/charge",
        data={
            "csrftoken": csrf,
            "idempotency_key": "portal-form-key-0002",
            "invoice_number": invoice,
            "amount": "1,000.00",
        },
    )
    assert page.status_code == 422
    assert "like 50.00" in _field_error(page.text, "amount")
    assert _value(page.text, "amount") == "1,000.00"
    assert _value(page.text, "invoice_number") == invoice
