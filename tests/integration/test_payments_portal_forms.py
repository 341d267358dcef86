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
from tests.support.cli import cli
from tests.support.payments import PaymentsWorld, profiles, sage500_world
from tests.support.server import server_env
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
    assert f"send them a pay link for invoice {invoice}" in said
    assert "Save this card" in said
    # the way forward is one click away, with the invoice filled in
    offered = re.search(r'href="(/payments/pay-links\?invoice=[^"]+)"', page.text)
    assert offered is not None
    link_form = client.get(offered.group(1).replace("&amp;", "&"))
    assert link_form.status_code == 200
    assert _value(link_form.text, "invoice_number") == invoice
    assert _value(page.text, "invoice_number") == invoice
    assert _value(page.text, "amount") == "10.00"
    # nothing was charged under the form's key: it stays, for sending again once saved
    assert 'value="portal-form-key-0001"' in page.text


def test_a_forged_form_key_in_ledgerlinks_own_key_space_charges_nothing(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    """A pay-link charge's key sent from a tampered charge form is refused before anything
    is looked up or charged: its settling job would take the charge as a pay link's."""
    customer = profiles(world)[0]
    invoice = world.open_invoices(int(customer[1:]))[0]["TranID"]
    csrf = sign_in(client, make_user(world.runtime.db, Role.OPERATOR).email)
    page = client.post(
        "/payments/charge",
        data={
            "csrftoken": csrf,
            "idempotency_key": "paylink:forged-0001",
            "invoice_number": invoice,
            "amount": "10.00",
        },
    )
    assert page.status_code == 422
    assert "The card was not charged" in page.text
    assert "ledgerlink&#39;s own pay-link and autopay charges" in page.text
    assert 'value="paylink:forged-0001"' not in page.text  # a fresh form key instead
    with world.runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(PaymentCharge)) == 0


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


def test_a_declined_payment_offers_only_what_fits_and_the_server_refuses_the_rest(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    customer = profiles(world)[0]
    invoice = world.open_invoices(int(customer[1:]))[0]["TranID"]
    declined = world.pay(customer, "0.29", invoice)  # the sandbox declines 0.29
    world.poll()
    world.process()
    found = world.exception_for(declined)
    assert found is not None
    assert found.reason_code == "declined"
    operator = make_user(world.runtime.db, Role.OPERATOR)
    csrf = sign_in(client, operator.email)
    page = client.get("/payments/exceptions").text
    assert "Card declined" in page
    assert "Apply to this invoice" not in page
    assert "Put on account" not in page
    assert f'href="/payments/charge?invoice={invoice}"' in page  # a new payment, instead

    refused = client.post(
        f"/payments/exceptions/{found.id}",
        data={"csrftoken": csrf, "action": "apply_to_invoice", "invoice_number": invoice},
    )
    assert refused.status_code == 422
    assert "Something went wrong" not in refused.text
    said = re.search(r'data-testid="error-action">([^<]*)<', refused.text)
    assert said is not None
    assert "no money was collected" in said.group(1)
    api = client.post(
        f"/api/v1/payments/exceptions/{found.id}/actions",
        json={"action": "on_account"},
        headers={"Authorization": f"Bearer {operator.token}"},
    )
    assert api.status_code == 422
    assert api.json()["errors"][0]["field"] == "action"
    assert world.exception_for(declined).status == "open"  # type: ignore[union-attr]
    assert world.erp_payments() == []


def test_a_refused_action_is_said_beside_its_field_on_the_queue(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    customer = profiles(world)[0]
    sale = world.pay(customer, "11.00", "NO-SUCH-INV")
    world.poll()
    world.process()
    found = world.exception_for(sale)
    assert found is not None
    csrf = sign_in(client, make_user(world.runtime.db, Role.OPERATOR).email)
    page = client.post(
        f"/payments/exceptions/{found.id}",
        data={"csrftoken": csrf, "action": "apply_to_invoice", "invoice_number": "  "},
    )
    assert page.status_code == 422
    said = re.search(r'data-testid="error-invoice_number">([^<]*)<', page.text)
    assert said is not None
    assert "Enter the invoice number" in said.group(1)
    assert f'aria-describedby="invoice_{found.id}-error"' in page.text


def test_a_resolved_exception_shows_its_resolution_not_the_reason_of_the_earlier_try(
    world: PaymentsWorld, client, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    payer, other = profiles(world)[:2]
    theirs = world.open_invoices(int(other[1:]))[0]["TranID"]
    own = world.open_invoices(int(payer[1:]))[0]["TranID"]
    sale = world.pay(payer, "5.00", theirs)
    world.poll()
    world.process()
    found = world.exception_for(sale)
    assert found is not None
    assert found.reason_code == "customer_mismatch"
    assert "belongs to another customer" in found.reason
    operator = make_user(world.runtime.db, Role.OPERATOR)
    csrf = sign_in(client, operator.email)
    done = client.post(
        f"/payments/exceptions/{found.id}",
        data={"csrftoken": csrf, "action": "apply_to_invoice", "invoice_number": own},
        follow_redirects=False,
    )
    assert done.status_code == 303
    world.process()

    resolved = client.get("/payments/exceptions?status=resolved").text
    assert "belongs to another customer" not in resolved
    assert "What to do" not in resolved
    shown = re.search(r'data-testid="exception-resolution">([^<]*)<', resolved)
    assert shown is not None
    assert f"Applied to invoice {own} by {operator.email}" in shown.group(1)
    assert "posted to Sage 500" in shown.group(1)
    detail = client.get(f"/payments/events/{world.event(sale).id}").text
    assert "belongs to another customer" not in detail
    assert f"Applied to invoice {own}" in detail
    listed = cli(["payments", "exceptions", "--all"], server_env(settings))
    assert "belongs" not in listed
    assert "Applied" in listed
