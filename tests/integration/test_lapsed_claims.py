"""A one-use claim a crash left without an outcome lapses and is settled from PayTrace's own
record: a card link's use (claimed before PayTrace stores the card) and a pay-link charge
(written ``sending`` before PayTrace is asked). The crash is played as the killed process
left it — the claim made through the module's own functions (a card link), or the charge
row it wrote (a pay link, as ``test_invoice_requests`` plays a killed worker) — then what
PayTrace did or did not get. Time is a ManualClock moved past the lease; against the real
PayTrace sandbox over HTTP, on both database back-ends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ledgerlink.clock import ManualClock
from ledgerlink.connectors.paytrace.protect import Billing, HostedCard, PayTraceProtect
from ledgerlink.connectors.paytrace.wiring import paytrace_gateway
from ledgerlink.domain.money import Money
from ledgerlink.members.linking import store_link
from ledgerlink.members.registry import get_member
from ledgerlink.paylinks.capture import claim_use, create_capture_link, view_capture
from ledgerlink.paylinks.jobs import settle_once
from ledgerlink.paylinks.links import create_link
from ledgerlink.paylinks.paying import PAYER_ACTOR, charge_key
from ledgerlink.paylinks.profiles import store_card
from ledgerlink.settings import Settings
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import AuditEntry, Connection
from ledgerlink.store.payment_models import PaymentCharge
from ledgerlink.store.types import utcnow
from tests.support.pay_links import (
    hosted_token,
    open_balance,
    open_page,
    sales_for,
    submit,
)
from tests.support.payments import ME, PaymentsWorld, sage500_world

MEMBER = "M00003"  # person 3: Sage 500 customer CustKey 3, no PayTrace profile yet
PROFILE = "C00003"  # the profile ledgerlink names for member M00003
PAYER = 1  # person 1's invoices (CustKey 1, PayTrace profile C00001)
ATTEMPT = "interruptedattempt01"  # the page the payer was on when the process died


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[PaymentsWorld]:
    with sage500_world(settings, tmp_path, people=3) as made:
        yield made


@pytest.fixture
def clock(world: PaymentsWorld, client: Any) -> ManualClock:
    """One clock for the payer's pages and the job (tests move it past the lease)."""
    moved = ManualClock(utcnow())
    world.runtime.clock = moved
    client.app.state.runtime.clock = moved
    return moved


def past_the_lease(world: PaymentsWorld, clock: ManualClock) -> None:
    clock.advance(world.runtime.settings.payments_lease_seconds + 1)


def gateway_connection(world: PaymentsWorld) -> Connection:
    with world.runtime.db.read() as session:
        found = session.get(Connection, world.paytrace_id)
        assert found is not None
        session.expunge(found)
        return found


def audited(world: PaymentsWorld, action: str) -> list[dict[str, Any]]:
    with world.runtime.db.read() as session:
        return [
            dict(after or {})
            for after in session.scalars(
                select(AuditEntry.after).where(AuditEntry.action == action)
            )
        ]


# -- card links -----------------------------------------------------------------------------


def card_link(world: PaymentsWorld) -> str:
    """Member 3 linked to its Sage 500 customer, and a card link for it (its path)."""

    async def make() -> str:
        async with world.ledger() as ledger:
            account = await ledger.get_customer("3")
        with world.runtime.db.transaction() as session:
            connection = session.get(Connection, world.ledger_id)
            assert connection is not None
            store_link(session, ME, get_member(session, MEMBER), connection, account, created=False)
        made = await create_capture_link(
            world.runtime, ME, member_number=MEMBER, origin="http://127.0.0.1"
        )
        return made.path

    return asyncio.run(make())


def claim_and_die(world: PaymentsWorld, path: str, card: dict[str, str] | None) -> None:
    """What a process killed while saving the card did: it claimed the link's use, and (with
    ``card``) PayTrace stored that card; nothing after."""

    async def dead_request() -> None:
        view = await view_capture(world.runtime, path.removeprefix("/card/"))
        gateway = gateway_connection(world)
        assert await claim_use(world.runtime, view, gateway, PROFILE)
        if card is not None:
            opened = paytrace_gateway(world.runtime, gateway)
            try:
                await store_card(
                    PayTraceProtect(opened),
                    PROFILE,
                    HostedCard(card["hpf_token"], card["enc_key"]),
                    Billing(name=view.customer.name),
                )
            finally:
                await opened.aclose()

    asyncio.run(dead_request())


def stored_profiles(world: PaymentsWorld) -> list[dict[str, Any]]:
    return list(
        world.paytrace("/v1/customer/export", {"customer_id": PROFILE}).get("customers", [])
    )


def test_an_abandoned_card_link_whose_card_never_reached_paytrace_works_again_after_the_lease(
    world: PaymentsWorld, clock: ManualClock, client: Any
) -> None:
    path = card_link(world)
    page = open_page(client, path)
    claim_and_die(world, path, card=None)

    stuck = open_page(client, path)
    assert stuck.status == 409, "inside the lease the dead request may still be saving"
    assert "saving a card at this moment" in stuck.text

    past_the_lease(world, clock)
    reopened = open_page(client, path)
    assert reopened.status == 200, reopened.text
    assert "Save a card on file" in reopened.text
    [released] = audited(world, "payment.card_capture.released_after_interruption")
    assert "interrupted before the card reached PayTrace" in released["finding"]
    assert "can save the card with it again" in released["finding"]

    card = hosted_token(world, page.client_key)
    assert submit(client, path, reopened, card, consent="1").status_code == 303
    [profile] = stored_profiles(world)
    assert profile["credit_card"]["masked_number"] == "xxxxxxxxxxxx5439"


def test_an_abandoned_card_link_whose_card_landed_is_done_by_the_job_without_a_second_profile(
    world: PaymentsWorld, clock: ManualClock, client: Any
) -> None:
    path = card_link(world)
    page = open_page(client, path)
    claim_and_die(world, path, card=hosted_token(world, page.client_key))

    assert asyncio.run(settle_once(world.runtime)) == {}, "inside the lease: left alone"
    past_the_lease(world, clock)
    assert asyncio.run(settle_once(world.runtime)) == {"card_link_saved": 1}
    assert asyncio.run(settle_once(world.runtime)) == {}

    [saved] = audited(world, "payment.card_capture.saved_after_interruption")
    assert saved["masked_card"] == "xxxxxxxxxxxx5439"
    assert "interrupted before recording it" in saved["finding"]
    with world.runtime.db.read() as session:
        linked = session.scalar(
            select(MemberLinkRow.customer_id)
            .join(MemberRow, MemberRow.id == MemberLinkRow.member_id)
            .where(MemberRow.number == MEMBER, MemberLinkRow.connection_id == world.paytrace_id)
        )
    assert linked == PROFILE, "the member is linked to the profile, as a finished save does"

    used = open_page(client, path)
    assert used.status == 409
    assert "used already: the card xxxxxxxxxxxx5439 is on file" in used.text
    other = hosted_token(world, page.client_key, number="5454545454545454")
    assert submit(client, path, page, other, consent="1").status_code == 409
    assert [p["credit_card"]["masked_number"] for p in stored_profiles(world)] == [
        "xxxxxxxxxxxx5439"
    ]
    assert "xxxxxxxxxxxx5439" in client.get(path + "/saved").text


# -- pay-link charges -------------------------------------------------------------------------


@dataclass(frozen=True)
class PayLink:
    path: str
    nonce: str
    invoice: str
    due: Money


def pay_link(world: PaymentsWorld) -> PayLink:
    """A pay link for person 1's first open invoice."""
    invoice = str(world.open_invoices(PAYER)[0]["TranID"])
    made = asyncio.run(
        create_link(world.runtime, ME, invoice_number=invoice, origin="http://127.0.0.1")
    )
    return PayLink(made.path, made.nonce, invoice, made.amount_due)


def charge_and_die(
    world: PaymentsWorld,
    link: PayLink,
    amount: Money,
    clock: ManualClock,
    status: str = "sending",
) -> None:
    """The charge a payer's request wrote under its attempt's key before calling PayTrace,
    left 'sending' by the process that died (or 'unknown': PayTrace did not answer the
    request in time, so the sale may have gone through)."""
    with world.runtime.db.transaction() as session:
        session.add(
            PaymentCharge(
                idempotency_key=charge_key(link.nonce, ATTEMPT),
                gateway_connection_id=world.paytrace_id,
                paytrace_customer_id="",
                invoice_number=link.invoice,
                amount_minor=amount.minor,
                currency=amount.currency,
                status=status,
                requested_by=PAYER_ACTOR,
                requested_at=clock.now(),
            )
        )


def the_charge(world: PaymentsWorld, link: PayLink) -> PaymentCharge:
    with world.runtime.db.read() as session:
        found = session.scalar(
            select(PaymentCharge).where(
                PaymentCharge.idempotency_key == charge_key(link.nonce, ATTEMPT)
            )
        )
        assert found is not None
        session.expunge(found)
        return found


def test_a_pay_link_charge_paytrace_took_before_the_crash_is_recorded_and_posted_once(
    world: PaymentsWorld, clock: ManualClock, client: Any
) -> None:
    link = pay_link(world)
    page = replace(open_page(client, link.path), attempt=ATTEMPT)
    charge_and_die(world, link, Money(1000, link.due.currency), clock)
    card = hosted_token(world, page.client_key)
    took = world.paytrace(  # ... and what PayTrace did with the request the process sent
        "/v1/transactions/sale/pt_protect",
        {**card, "amount": "10.00", "invoice_id": link.invoice},
    )
    assert took["success"], took

    assert asyncio.run(settle_once(world.runtime)) == {}, "inside the lease: left alone"
    past_the_lease(world, clock)
    assert asyncio.run(settle_once(world.runtime)) == {"charge_approved": 1}
    assert asyncio.run(settle_once(world.runtime)) == {}

    charge = the_charge(world, link)
    assert (charge.status, charge.transaction_id) == ("approved", str(took["transaction_id"]))
    [found] = audited(world, "payment.pay_link.charge.after_interruption.approved")
    assert "PayTrace took the pay-link payment of 10.00 USD" in found["finding"]
    assert "posted once; the card was not charged again" in found["finding"]
    world.process()
    before = Decimal(link.due.format_plain())
    assert open_balance(world, link.invoice) == before - Decimal("10.00")

    # the payer's browser resends the interrupted form: the receipt, no second sale
    resent = submit(client, link.path, page, card, amount="10.00")
    assert resent.status_code == 303
    assert resent.headers["location"].endswith(f"/receipt/{ATTEMPT}")
    assert "xxxxxxxxxxxx5439" in client.get(resent.headers["location"]).text
    assert len(sales_for(world, link.invoice)) == 1
    world.poll()  # PayTrace's export brings the same sale: still posted once
    world.process()
    assert open_balance(world, link.invoice) == before - Decimal("10.00")


def test_a_pay_link_charge_that_never_reached_paytrace_is_released_and_the_payer_pays(
    world: PaymentsWorld, clock: ManualClock, client: Any
) -> None:
    link = pay_link(world)
    page = replace(open_page(client, link.path), attempt=ATTEMPT)
    charge_and_die(world, link, link.due, clock)  # the whole amount: nothing left to ask

    stuck = open_page(client, link.path)
    assert stuck.status == 409, "inside the lease the dead request may still be paying"

    past_the_lease(world, clock)  # the payer's browser resends the interrupted form
    resent = submit(client, link.path, page, hosted_token(world, page.client_key), amount="")
    assert resent.status_code == 422
    assert "interrupted before it reached PayTrace" in resent.text
    assert the_charge(world, link).status == "failed"
    [released] = audited(world, "payment.pay_link.charge.after_interruption.failed")
    assert "PayTrace has no sale for it, nothing was charged" in released["finding"]
    assert sales_for(world, link.invoice) == []

    again = open_page(client, link.path)
    assert again.status == 200
    assert f'value="{link.due.format_plain()}"' in again.text
    paid = submit(client, link.path, again, hosted_token(world, again.client_key), amount="")
    assert paid.status_code == 303, paid.text
    assert len(sales_for(world, link.invoice)) == 1
    world.process()
    assert open_balance(world, link.invoice) == Decimal(0)


def test_a_pay_link_charge_paytrace_did_not_answer_in_time_is_settled_from_its_record(
    world: PaymentsWorld, clock: ManualClock, client: Any
) -> None:
    """PayTrace took the sale but its answer never came (the request timed out): the
    charge, 'unknown', and the payer told not to pay again, is recorded from PayTrace's
    record once the lease lapsed and posted once, instead of staying unknown for good."""
    link = pay_link(world)
    page = replace(open_page(client, link.path), attempt=ATTEMPT)
    charge_and_die(world, link, Money(1000, link.due.currency), clock, status="unknown")
    took = world.paytrace(
        "/v1/transactions/sale/pt_protect",
        {**hosted_token(world, page.client_key), "amount": "10.00", "invoice_id": link.invoice},
    )
    assert took["success"], took

    assert asyncio.run(settle_once(world.runtime)) == {}, "inside the lease: left alone"
    past_the_lease(world, clock)
    assert asyncio.run(settle_once(world.runtime)) == {"charge_approved": 1}
    assert asyncio.run(settle_once(world.runtime)) == {}

    charge = the_charge(world, link)
    assert (charge.status, charge.transaction_id) == ("approved", str(took["transaction_id"]))
    [found] = audited(world, "payment.pay_link.charge.after_interruption.approved")
    assert "PayTrace took the pay-link payment of 10.00 USD" in found["finding"]
    assert "did not answer in time" in found["finding"]
    world.process()
    world.poll()  # PayTrace's export brings the same sale: still posted once
    world.process()
    before = Decimal(link.due.format_plain())
    assert open_balance(world, link.invoice) == before - Decimal("10.00")
    assert len(sales_for(world, link.invoice)) == 1


def test_a_pay_link_charge_paytrace_did_not_answer_and_never_made_lets_the_payer_pay(
    world: PaymentsWorld, clock: ManualClock, client: Any
) -> None:
    """The request timed out before PayTrace made a sale: once the lease lapsed the
    charge is given back with PayTrace's word for it, and the link takes the payment."""
    link = pay_link(world)
    charge_and_die(world, link, link.due, clock, status="unknown")

    stuck = open_page(client, link.path)
    assert stuck.status == 409, "the sale may have gone through: no second payment yet"

    past_the_lease(world, clock)
    assert asyncio.run(settle_once(world.runtime)) == {"charge_released": 1}
    charge = the_charge(world, link)
    assert charge.status == "failed"
    assert "PayTrace did not answer in time and has no sale" in (charge.message or "")
    [released] = audited(world, "payment.pay_link.charge.after_interruption.failed")
    assert "has no sale for it: nothing was charged" in released["finding"]

    again = open_page(client, link.path)
    assert again.status == 200
    paid = submit(client, link.path, again, hosted_token(world, again.client_key), amount="")
    assert paid.status_code == 303, paid.text
    assert len(sales_for(world, link.invoice)) == 1
    world.process()
    assert open_balance(world, link.invoice) == Decimal(0)
