"""An operator charges an invoice whose earlier charge PayTrace did not answer in time
(``unknown``): that charge may have taken the money while the invoice still shows its
balance in the ledger (the sale posts with the next poll). The new charge is held back
until PayTrace's record is final, then the earlier one is settled from it: a sale found
refuses the new charge, naming the transaction; none lets it through. Real PayTrace
sandbox over HTTP, the operator's API, a ManualClock moved past the lease; both back-ends.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ledgerlink.clock import ManualClock
from ledgerlink.identity.roles import Role
from ledgerlink.payments.earlier_charges import settle_lapsed_operator_charges
from ledgerlink.settings import Settings
from ledgerlink.store.payment_models import PaymentCharge
from ledgerlink.store.types import utcnow
from tests.support.pay_links import sales_for
from tests.support.payments import PaymentsWorld, profiles, sage500_world
from tests.support.web import make_user

EARLIER = "operator-charge-unanswered-1"


@pytest.fixture
def world(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path) as made:
        yield made


@pytest.fixture
def clock(world: PaymentsWorld, client: Any) -> ManualClock:
    moved = ManualClock(utcnow())
    world.runtime.clock = moved
    client.app.state.runtime.clock = moved
    return moved


def _unanswered(world: PaymentsWorld, clock: ManualClock, went_through: bool) -> tuple[str, str]:
    """An earlier operator charge of a customer's first open invoice for 10.00, ended
    'unknown'; with ``went_through``, PayTrace made the sale all the same."""
    customer = profiles(world)[0]
    invoice = str(world.open_invoices(int(customer[1:]))[0]["TranID"])
    with world.runtime.db.transaction() as session:
        session.add(
            PaymentCharge(
                idempotency_key=EARLIER,
                gateway_connection_id=world.paytrace_id,
                paytrace_customer_id=customer,
                invoice_number=invoice,
                amount_minor=1000,
                currency="USD",
                status="unknown",
                message="PayTrace did not answer in time",
                requested_by="ops@example.org",
                requested_at=clock.now(),
            )
        )
    if went_through:
        sale = world.paytrace(
            "/v1/transactions/sale/by_customer",
            {"customer_id": customer, "amount": "10.00", "invoice_id": invoice},
        )
        assert sale["success"], sale
    return customer, invoice


def _charge(client: Any, token: str, invoice: str, key: str) -> Any:
    return client.post(
        "/api/v1/payments/charges",
        json={"invoice_number": invoice, "amount": "10.00"},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )


def _earlier(world: PaymentsWorld) -> PaymentCharge:
    with world.runtime.db.read() as session:
        found = session.scalar(
            select(PaymentCharge).where(PaymentCharge.idempotency_key == EARLIER)
        )
        assert found is not None
        session.expunge(found)
        return found


def test_a_charge_after_one_paytrace_took_unanswered_is_refused_naming_its_sale(
    world: PaymentsWorld, clock: ManualClock, client: Any
) -> None:
    token = make_user(world.runtime.db, Role.OPERATOR).token
    _, invoice = _unanswered(world, clock, went_through=True)

    early = _charge(client, token, invoice, "operator-charge-again-1")
    assert early.status_code == 422, early.text
    assert early.json()["errors"][0]["field"] == "invoice_number"
    assert "still without an outcome from PayTrace" in early.json()["detail"]

    clock.advance(world.runtime.settings.payments_lease_seconds + 1)
    late = _charge(client, token, invoice, "operator-charge-again-2")
    assert late.status_code == 422, late.text
    earlier = _earlier(world)
    assert earlier.status == "approved"
    assert earlier.transaction_id is not None
    assert "was charged already" in late.json()["detail"]
    assert earlier.transaction_id in late.json()["detail"]
    assert len(sales_for(world, invoice)) == 1, "the card was charged once"

    world.poll()  # PayTrace's export brings the sale: posted once
    world.process()
    assert len(world.erp_payments()) == 1


def test_a_charge_after_one_paytrace_never_made_goes_through_once_the_record_is_final(
    world: PaymentsWorld, clock: ManualClock, client: Any
) -> None:
    token = make_user(world.runtime.db, Role.OPERATOR).token
    _, invoice = _unanswered(world, clock, went_through=False)

    clock.advance(world.runtime.settings.payments_lease_seconds + 1)
    charged = _charge(client, token, invoice, "operator-charge-again-3")
    assert charged.status_code == 200, charged.text
    assert charged.json()["status"] == "approved"
    earlier = _earlier(world)
    assert earlier.status == "failed"
    assert "PayTrace has no sale" in (earlier.message or "")
    assert len(sales_for(world, invoice)) == 1


@pytest.mark.parametrize("went_through", [True, False], ids=["sale-found", "no-sale"])
def test_an_unanswered_charge_nobody_retries_is_settled_by_the_minutely_job(
    world: PaymentsWorld, clock: ManualClock, went_through: bool
) -> None:
    """Nobody charges the invoice again: the charge does not stay "unknown" on its page.
    Within the lease it is left alone (PayTrace's record may still change); after it, the
    job records what PayTrace's record shows, once."""
    _, invoice = _unanswered(world, clock, went_through=went_through)

    assert asyncio.run(settle_lapsed_operator_charges(world.runtime)) == {}
    assert _earlier(world).status == "unknown"

    clock.advance(world.runtime.settings.payments_lease_seconds + 1)
    counts = asyncio.run(settle_lapsed_operator_charges(world.runtime))
    earlier = _earlier(world)
    if went_through:
        assert counts == {"approved": 1}
        assert earlier.status == "approved"
        assert earlier.transaction_id == str(sales_for(world, invoice)[0]["transaction_id"])
    else:
        assert counts == {"failed": 1}
        assert earlier.status == "failed"
        assert "PayTrace has no sale" in (earlier.message or "")
    assert asyncio.run(settle_lapsed_operator_charges(world.runtime)) == {}  # once


def test_an_api_caller_cannot_use_ledgerlinks_own_charge_keys(
    world: PaymentsWorld, client: Any
) -> None:
    """``paylink:`` and ``autopay:`` keys are ledgerlink's own charges': one from an API
    caller would be settled by the pay-link or autopay job as theirs."""
    token = make_user(world.runtime.db, Role.OPERATOR).token
    customer = profiles(world)[0]
    invoice = str(world.open_invoices(int(customer[1:]))[0]["TranID"])
    for key in ("paylink:123456", "autopay:7-2026-12"):
        refused = _charge(client, token, invoice, key)
        assert refused.status_code == 422, refused.text
        assert "Idempotency-Key" in refused.json()["detail"]
    assert sales_for(world, invoice) == []
