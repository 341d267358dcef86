"""Invoice created → payment request, against the real sandboxes and a real SMTP server
(aiosmtpd): a new Sage 500 or SBC invoice of a linked customer e-mails one pay link, or —
with autopay and the customer's recorded consent — is charged once on its due date and
posted as a receipt applied to it; a decline is one payment exception and one follow-up
e-mail; autopay is refused without consent or a stored profile."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from ledgerlink import connections
from ledgerlink.connectors.sage500.tables import tarInvoice
from ledgerlink.identity.roles import Role
from ledgerlink.invoice_requests.demo import ensure_demo_choice
from ledgerlink.invoice_requests.detection import detect_new_invoices
from ledgerlink.invoice_requests.preferences import (
    InvoiceRequestRefused,
    preference_of,
    set_preference,
)
from ledgerlink.invoice_requests.requesting import work_due
from ledgerlink.members.linking import store_link
from ledgerlink.members.registry import get_member
from ledgerlink.sandbox.sage500.seed import INVOICE_TRAN_TYPE, invoice_tran_id
from ledgerlink.settings import Settings
from ledgerlink.store.invoice_request_models import InvoiceRequest
from ledgerlink.store.models import AuditEntry, Connection
from ledgerlink.store.payment_models import PaymentCharge, PaymentException
from ledgerlink.store.types import utcnow
from tests.support.pay_links import open_balance, sales_for
from tests.support.payments import ME, PaymentsWorld, sage500_world, sbc_world
from tests.support.smtp import Inbox, smtp_server
from tests.support.web import make_user, sign_in

BASE_URL = "http://127.0.0.1:9440"
MEMBER = "M00001"  # Sage 500 customer C00001 (CustKey 1), PayTrace profile C00001


@pytest.fixture
def mailbox() -> Iterator[tuple[int, Inbox]]:
    with smtp_server() as found:
        yield found


@pytest.fixture
def world(
    settings: Settings, tmp_path: Path, mailbox: tuple[int, Inbox]
) -> Iterator[PaymentsWorld]:
    settings.base_url = BASE_URL
    with sage500_world(settings, tmp_path, people=3) as made:
        _link_sage500_member(made, MEMBER, "1")
        add_smtp(made, mailbox[0])
        yield made


def add_smtp(world: PaymentsWorld, port: int) -> None:
    with world.runtime.db.transaction() as session:
        connection = connections.create(
            session,
            world.runtime.vault,
            ME,
            kind="smtp",
            name="Mail",
            settings={
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "from_address": "billing@example.org",
                "recipients": ["finance@example.org"],
                "digest_at": "",
            },
            secrets={},
        )
        connections.update(session, world.runtime.vault, ME, connection, is_active=True)


def _link_sage500_member(world: PaymentsWorld, number: str, cust_key: str) -> None:
    async def customer() -> Any:
        async with world.ledger() as ledger:
            return await ledger.get_customer(cust_key)

    account = asyncio.run(customer())
    with world.runtime.db.transaction() as session:
        connection = session.get(Connection, world.ledger_id)
        assert connection is not None
        store_link(session, ME, get_member(session, number), connection, account, created=False)


def new_sage500_invoice(
    world: PaymentsWorld, cust_key: int, amount: str, due: dt.date | None = None
) -> str:
    """An invoice entered in Sage 500 (a new tarInvoice row, as the ERP writes it)."""
    assert world.erp is not None
    today = dt.datetime.now().replace(microsecond=0)
    with world.erp.begin() as conn:
        key = int(conn.scalar(select(func.max(tarInvoice.c.InvcKey))) or 0) + 1
        conn.execute(
            insert(tarInvoice).values(
                InvcKey=key,
                TranID=invoice_tran_id(key),
                TranNo=f"{key:010d}",
                TranType=INVOICE_TRAN_TYPE,
                TranDate=today,
                PostDate=today,
                DueDate=dt.datetime.combine(due or today.date(), dt.time()),
                TranAmt=Decimal(amount),
                TranAmtHC=Decimal(amount),
                Balance=Decimal(amount),
                BalanceHC=Decimal(amount),
                CustKey=cust_key,
                CompanyID="SOA",
                CurrID="USD",
                CurrExchRate=Decimal(1),
                Status=1,
                UpdateCounter=1,
            )
        )
    return invoice_tran_id(key)


def run(world: PaymentsWorld, now: dt.datetime | None = None) -> dict[str, int]:
    """One run of the job's work, in this process (the kill test uses a real worker)."""

    async def once() -> dict[str, int]:
        found = await detect_new_invoices(world.runtime)
        counts = dict(await work_due(world.runtime, now))
        return {"found": found, **counts}

    return asyncio.run(once())


def choose(world: PaymentsWorld, mode: str, **consent: Any) -> None:
    asyncio.run(set_preference(world.runtime, ME, MEMBER, mode=mode, **consent))


def requests(world: PaymentsWorld) -> list[InvoiceRequest]:
    with world.runtime.db.read() as session:
        return list(session.scalars(select(InvoiceRequest).order_by(InvoiceRequest.id)))


CONSENT = {"consent_method": "by phone to the membership desk", "consent_given_on": "2026-12-01"}


def test_a_new_sage500_invoice_emails_exactly_one_pay_link(
    world: PaymentsWorld, mailbox: tuple[int, Inbox]
) -> None:
    _, inbox = mailbox
    choose(world, "email")
    assert run(world)["found"] == 0  # the first read only marks where new invoices start
    assert inbox.messages == [], "invoices open before ledgerlink looked are not new"

    due = dt.date.today() + dt.timedelta(days=30)
    invoice = new_sage500_invoice(world, 1, "40.00", due)
    new_sage500_invoice(world, 2, "55.00")  # a customer who asked for nothing
    assert run(world)["sent"] == 1
    run(world)
    run(world)

    assert len(inbox.messages) == 1
    assert inbox.subjects() == [f"Invoice {invoice}: $40.00 due"]
    assert inbox.envelopes[0][1] == [world_customer_email(world, "1")]
    body = inbox.body(0)
    assert f"{BASE_URL}/pay/" in body
    assert due.strftime("%d %B %Y") in body
    [request] = requests(world)
    assert (request.invoice_number, request.state) == (invoice, "sent")


def world_customer_email(world: PaymentsWorld, cust_key: str) -> str:
    async def email() -> str:
        async with world.ledger() as ledger:
            return str((await ledger.get_customer(cust_key)).email)

    return asyncio.run(email())


def test_autopay_charges_once_on_the_due_date_and_posts_the_receipt(
    world: PaymentsWorld, mailbox: tuple[int, Inbox]
) -> None:
    choose(world, "autopay", **CONSENT)
    run(world)
    due = dt.date.today() + dt.timedelta(days=10)
    invoice = new_sage500_invoice(world, 1, "42.50", due)

    assert run(world) == {"found": 1}  # found, not yet due: nothing charged
    assert sales_for(world, invoice) == []
    on_due_date = dt.datetime.combine(due, dt.time(9), tzinfo=dt.UTC)
    assert run(world, on_due_date)["charged"] == 1
    run(world, on_due_date + dt.timedelta(hours=1))

    [sale] = sales_for(world, invoice)
    assert Decimal(str(sale["amount"])) == Decimal("42.50")
    world.process()
    assert open_balance(world, invoice) == Decimal(0)  # posted as a receipt applied to it
    [request] = requests(world)
    assert request.state == "charged"
    assert request.transaction_id == str(sale["transaction_id"])
    assert mailbox[1].messages == []


def test_a_declined_autopay_is_one_exception_and_one_followup_email(
    world: PaymentsWorld, mailbox: tuple[int, Inbox]
) -> None:
    _, inbox = mailbox
    choose(world, "autopay", **CONSENT)
    run(world)
    invoice = new_sage500_invoice(world, 1, "0.29")  # the sandbox declines $0.29
    tomorrow = utcnow() + dt.timedelta(days=1)
    assert run(world, tomorrow)["declined"] == 1
    run(world, tomorrow)
    world.process()

    assert len(sales_for(world, invoice)) == 1
    with world.runtime.db.read() as session:
        [exception] = session.scalars(select(PaymentException)).all()
    assert exception.reason_code == "declined"
    assert invoice in exception.reason
    assert "EXPIRED CARD" in exception.reason
    assert len(inbox.messages) == 1
    assert inbox.subjects() == [f"Invoice {invoice}: your automatic payment did not go through"]
    assert "EXPIRED CARD" in inbox.body(0)
    assert f"{BASE_URL}/pay/" in inbox.body(0)
    assert requests(world)[0].state == "declined"


def test_autopay_without_consent_or_stored_profile_is_refused_with_how_to_fix(
    world: PaymentsWorld,
) -> None:
    with pytest.raises(InvoiceRequestRefused) as no_consent:
        choose(world, "autopay")
    assert no_consent.value.field == "consent_method"
    assert "how the customer agreed" in no_consent.value.message

    _link_sage500_member(world, "M00003", "3")
    world.paytrace("/v1/customer/delete", {"customer_id": "C00003"})  # no card on file
    with pytest.raises(InvoiceRequestRefused) as no_profile:
        asyncio.run(set_preference(world.runtime, ME, "M00003", mode="autopay", **CONSENT))
    assert no_profile.value.field == "mode"
    assert "/members/M00003/card-capture-link" in no_profile.value.message
    with world.runtime.db.read() as session:
        assert preference_of(session, "M00003").mode == "nothing"

    choose(world, "autopay", **CONSENT)
    with world.runtime.db.read() as session:
        kept = preference_of(session, MEMBER)
        [entry] = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "invoice_requests.setting_changed")
        ).all()
    assert (kept.mode, kept.consent_method) == ("autopay", CONSENT["consent_method"])
    assert kept.consent_recorded_by == ME.actor
    assert entry.after["consent_method"] == CONSENT["consent_method"]  # type: ignore[index]


@pytest.fixture
def sbc(settings: Settings, tmp_path: Path, mailbox: tuple[int, Inbox]) -> Iterator[PaymentsWorld]:
    settings.base_url = BASE_URL
    with sbc_world(settings, tmp_path, people=3) as made:
        add_smtp(made, mailbox[0])
        yield made


def test_a_new_sbc_invoice_emails_exactly_one_pay_link(
    sbc: PaymentsWorld, mailbox: tuple[int, Inbox]
) -> None:
    _, inbox = mailbox
    choose(sbc, "email")
    run(sbc)
    created = new_sbc_invoice(sbc, sbc.linked_customer(MEMBER), "40.00")
    assert run(sbc)["sent"] == 1
    run(sbc)
    assert inbox.subjects() == [f"Invoice {created['invoice_number']}: $40.00 due"]


def new_sbc_invoice(world: PaymentsWorld, contact_id: str, amount: str) -> dict[str, Any]:
    """An invoice entered in SBC, through its API as the bookkeeper's app does."""

    async def create() -> dict[str, Any]:
        async with world.ledger() as ledger:
            accounts = await ledger.client.request(
                "GET",
                "/ledger_accounts",
                params={"ledger_account_type_id": "SALES", "attributes": "all"},
            )
            sales = accounts.json()["$items"][0]["id"]
            today = dt.date.today()
            response = await ledger.client.request(
                "POST",
                "/sales_invoices",
                json={
                    "sales_invoice": {
                        "contact_id": contact_id,
                        "date": today.isoformat(),
                        "due_date": (today + dt.timedelta(days=14)).isoformat(),
                        "invoice_lines": [
                            {
                                "description": "Dues",
                                "ledger_account_id": sales,
                                "quantity": "1",
                                "unit_price": amount,
                            }
                        ],
                    }
                },
            )
            return dict(response.json())

    return asyncio.run(create())


# -- the member page and the API -------------------------------------------------------------


def test_the_member_page_keeps_what_was_typed_beside_the_refusal_and_shows_the_consent(
    world: PaymentsWorld, client: TestClient
) -> None:
    operator = make_user(world.runtime.db, Role.OPERATOR, "ops@example.org")
    token = sign_in(client, operator.email)
    form = {"csrftoken": token, "mode": "autopay", "consent_method": "by phone to Sam"}
    refused = client.post(f"/members/{MEMBER}/invoice-requests", data=form)
    assert refused.status_code == 422
    assert 'data-testid="error-consent_given_on"' in refused.text
    assert 'value="by phone to Sam"' in refused.text
    assert 'value="autopay" checked' in refused.text

    saved = client.post(
        f"/members/{MEMBER}/invoice-requests",
        data={**form, "consent_given_on": "2026-12-01"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    page = client.get(saved.headers["location"])
    assert "Autopay: charge the stored card or bank account on the due date" in page.text
    assert "Consent by phone to Sam, given 2026-12-01; recorded by ops@example.org" in page.text


def test_the_api_sets_the_choice_and_lists_the_requests(
    world: PaymentsWorld, client: TestClient, mailbox: tuple[int, Inbox]
) -> None:
    viewer = {"Authorization": f"Bearer {make_user(world.runtime.db, Role.VIEWER).token}"}
    operator = {"Authorization": f"Bearer {make_user(world.runtime.db, Role.OPERATOR).token}"}
    url = f"/api/v1/members/{MEMBER}/invoice-requests"
    assert client.put(f"{url}/setting", json={"mode": "email"}, headers=viewer).status_code == 403
    no_consent = client.put(f"{url}/setting", json={"mode": "autopay"}, headers=operator)
    assert no_consent.status_code == 422
    assert "consent_method" in no_consent.text
    chosen = client.put(f"{url}/setting", json={"mode": "email"}, headers=operator)
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["mode"] == "email"

    run(world)
    invoice = new_sage500_invoice(world, 1, "12.00")
    run(world)
    listed = client.get(url, headers=viewer).json()
    assert listed["setting"]["mode"] == "email"
    [request] = listed["requests"]
    assert (request["invoice_number"], request["state"]) == (invoice, "sent")
    assert request["amount"] == "$12.00"


def test_a_charge_a_crash_left_unrecorded_is_found_at_paytrace_not_made_again(
    world: PaymentsWorld,
) -> None:
    """The worker died after PayTrace took the sale and before anything was recorded: the
    charge is 'sending' under the invoice's key and the request 'charging'. Once the claim
    lapsed, the next run adopts PayTrace's sale instead of charging a second time."""
    choose(world, "autopay", **CONSENT)
    run(world)
    invoice = new_sage500_invoice(world, 1, "33.00")
    run(world, utcnow() - dt.timedelta(days=2))  # found; not due yet
    [request] = requests(world)
    with world.runtime.db.transaction() as session:  # what the dead run wrote ...
        session.add(
            PaymentCharge(
                idempotency_key=request.charge_key,
                gateway_connection_id=world.paytrace_id,
                paytrace_customer_id="C00001",
                invoice_number=invoice,
                amount_minor=3300,
                currency="USD",
                status="sending",
                requested_by="system:autopay",
            )
        )
        row = session.get(InvoiceRequest, request.id)
        assert row is not None
        row.state, row.attempts = "charging", 1
        row.claimed_until = utcnow() + dt.timedelta(minutes=2)
    sale = world.pay("C00001", "33.00", invoice)  # ... and what PayTrace did

    assert run(world) == {"found": 0}, "the dead run's claim has not lapsed: left alone"
    after_lease = utcnow() + dt.timedelta(minutes=3)
    assert run(world, after_lease) == {"found": 0, "charged": 1}
    run(world, after_lease + dt.timedelta(minutes=5))

    assert [s["transaction_id"] for s in sales_for(world, invoice)] == [int(sale)]
    [request] = requests(world)
    assert (request.state, request.transaction_id) == ("charged", sale)
    world.poll()
    world.process()
    assert open_balance(world, invoice) == Decimal(0)


def test_an_email_a_crash_may_have_sent_is_sent_once_more_at_most(
    world: PaymentsWorld, mailbox: tuple[int, Inbox]
) -> None:
    """SMTP has no idempotency key: a run that died between sending and recording may or
    may not have sent. The next run sends once more (never none); if that run dies too,
    nothing more is sent and the request says so."""
    _, inbox = mailbox
    choose(world, "email")
    _link_sage500_member(world, "M00002", "2")
    asyncio.run(set_preference(world.runtime, ME, "M00002", mode="email"))
    run(world)
    invoice = new_sage500_invoice(world, 1, "18.00")
    first = new_sage500_invoice(world, 2, "19.00")
    assert asyncio.run(detect_new_invoices(world.runtime)) == 2
    lapsed = utcnow() - dt.timedelta(seconds=1)
    with world.runtime.db.transaction() as session:  # as two dead runs left them
        for row in session.scalars(select(InvoiceRequest)):
            if row.invoice_number in (invoice, first):
                row.attempts, row.claimed_until = 1, lapsed
                row.state = "sending" if row.invoice_number == invoice else "resending"

    counts = asyncio.run(work_due(world.runtime))

    assert counts == {"sent": 1}  # the other was given up in its claim: no e-mail
    assert inbox.subjects() == [f"Invoice {invoice}: $18.00 due"]
    states = {r.invoice_number: r for r in requests(world)}
    assert states[invoice].state == "sent"
    assert "again after an interruption" in states[invoice].message
    assert states[first].state == "unconfirmed"
    assert "not sent a third time" in states[first].message


def test_the_demo_member_asks_for_each_new_invoice_by_email(world: PaymentsWorld) -> None:
    with world.runtime.db.transaction() as session:
        assert ensure_demo_choice(session)
        assert not ensure_demo_choice(session), "a choice already made is left alone"
    with world.runtime.db.read() as session:
        assert preference_of(session, "M00001").mode == "email"


def test_autopay_charges_only_what_a_pay_link_payment_being_posted_leaves(
    world: PaymentsWorld,
) -> None:
    choose(world, "autopay", **CONSENT)
    run(world)
    invoice = new_sage500_invoice(world, 1, "42.50")
    with world.runtime.db.transaction() as session:  # paid 20.00 by link, not posted yet
        session.add(
            PaymentCharge(
                idempotency_key="paylink:attempt-1",
                gateway_connection_id=world.paytrace_id,
                paytrace_customer_id="C00001",
                invoice_number=invoice,
                amount_minor=2000,
                currency="USD",
                status="approved",
                requested_by="payer",
            )
        )
    assert run(world, utcnow() + dt.timedelta(days=1))["charged"] == 1
    [sale] = sales_for(world, invoice)
    assert Decimal(str(sale["amount"])) == Decimal("22.50")
