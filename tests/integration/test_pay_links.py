"""Pay by link: finance makes a signed link for an invoice; the payer opens it, types the
card into PayTrace's hosted fields (played here by the sandbox's tokenizer, as the iframe
posts it) and pays; the payment is posted to the invoice once, against both ledger kinds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from ledgerlink.identity.roles import Role
from ledgerlink.paylinks import tokens
from ledgerlink.payments.level_three import outcome_for
from ledgerlink.settings import Settings
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import AuditEntry
from ledgerlink.web.headers import CONTENT_SECURITY_POLICY
from tests.support.level_three import recorded
from tests.support.pay_links import (
    event_count,
    hosted_token,
    make_link,
    open_balance,
    open_page,
    sales_for,
    submit,
)
from tests.support.payments import PaymentsWorld, sage500_world, sbc_world
from tests.support.smtp import smtp_server
from tests.support.web import make_user, sign_in

#: People 3, 4, 7 and 8 have no PayTrace profile in the seeded sandboxes (1, 2, 5, 6 have).
WITHOUT_PROFILE = (3, 4, 7, 8)


@pytest.fixture(params=["sage500", "sbc"])
def world(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[PaymentsWorld]:
    made = sage500_world if request.param == "sage500" else sbc_world
    with made(settings, tmp_path, people=8) as opened:
        yield opened


def _invoice(world: PaymentsWorld, people: tuple[int, ...] = (1, 2, 5, 6)) -> tuple[int, str]:
    """The first of ``people`` with an open invoice, and that invoice."""
    for person in people:
        if world.erp is not None:
            found = [str(row["TranID"]) for row in world.open_invoices(person)]
        else:
            customer = world.linked_customer(f"M{person:05d}")
            found = [str(i.number) for i in world.sbc_invoices(customer)]
        if found:
            return person, found[0]
    raise AssertionError(f"none of people {people} has an open invoice")


def _link(world: PaymentsWorld, client, invoice: str, **extra: object) -> str:  # type: ignore[no-untyped-def]
    operator = make_user(world.runtime.db, Role.OPERATOR).token
    made = make_link(client, operator, invoice, **extra)
    assert made.status_code == 201, made.text
    return str(made.json()["path"])


def test_a_payer_pays_part_of_an_invoice_by_link_and_it_is_posted_once(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    _, invoice = _invoice(world)
    before = open_balance(world, invoice)
    path = _link(world, client, invoice)

    page = open_page(client, path)
    assert page.status == 200
    assert f"Pay invoice {invoice}" in page.text
    assert f"{before:.2f}" in page.text  # the amount due, read from the ledger
    origin = world.paytrace_url
    assert f'<script src="{origin}/js/protect.min.js"' in page.text
    directives = dict(d.split(" ", 1) for d in page.csp.split("; "))
    assert directives["script-src"] == f"'self' {origin}"
    assert directives["frame-src"] == origin
    assert directives["connect-src"] == f"'self' {origin}"
    # the rest of the portal keeps its own policy
    assert client.get("/login").headers["content-security-policy"] == CONTENT_SECURITY_POLICY

    card = hosted_token(world, page.client_key)
    first = submit(client, path, page, card, amount="10.00")
    assert first.status_code == 303, first.text
    receipt = first.headers["location"]
    # a double click (the same page sent again) charges nothing more
    again = submit(client, path, page, card, amount="10.00")
    assert again.status_code == 303
    assert again.headers["location"] == receipt
    assert len(sales_for(world, invoice)) == 1
    # paid but not yet posted: the page already asks only for the rest
    pending = open_page(client, path)
    assert open_balance(world, invoice) == before
    assert f'value="{before - Decimal("10.00"):.2f}"' in pending.text

    world.process()
    assert open_balance(world, invoice) == before - Decimal("10.00")
    shown = client.get(receipt)
    assert shown.status_code == 200
    assert "xxxxxxxxxxxx5439" in shown.text
    assert str(sales_for(world, invoice)[0]["transaction_id"]) in shown.text
    assert "4012000098765439" not in shown.text
    # reloading the receipt, and the page again, charge nothing
    client.get(receipt)
    reopened = open_page(client, path)
    assert f"{before - Decimal('10.00'):.2f}" in reopened.text
    assert len(sales_for(world, invoice)) == 1
    assert event_count(world) == 1


def test_saving_the_card_creates_the_customers_paytrace_profile_and_pays_by_it(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    person, invoice = _invoice(world, WITHOUT_PROFILE)
    profile = f"C{person:05d}"
    assert not world.paytrace("/v1/customer/export", {"customer_id": profile}).get("customers")
    path = _link(world, client, invoice)
    page = open_page(client, path)
    paid = submit(client, path, page, hosted_token(world, page.client_key), save_card="1")
    assert paid.status_code == 303, paid.text

    stored = world.paytrace("/v1/customer/export", {"customer_id": profile})["customers"]
    assert stored[0]["credit_card"]["masked_number"] == "xxxxxxxxxxxx5439"
    sale = sales_for(world, invoice)
    assert [s["customer_id"] for s in sale] == [profile]  # charged by the new profile
    world.process()
    assert open_balance(world, invoice) == 0
    if world.erp is None:  # SBC: the member now has its PayTrace link
        with world.runtime.db.read() as session:
            linked = session.scalar(
                select(MemberLinkRow.customer_id)
                .join(MemberRow, MemberRow.id == MemberLinkRow.member_id)
                .where(
                    MemberRow.number == f"M{person:05d}",
                    MemberLinkRow.connection_id == world.paytrace_id,
                    MemberLinkRow.unlinked_at.is_(None),
                )
            )
        assert linked == profile


def test_a_changed_expired_or_paid_link_shows_a_page_and_charges_nothing(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    _, invoice = _invoice(world)
    path = _link(world, client, invoice)
    page = open_page(client, path)
    card = hosted_token(world, page.client_key)

    token = path.removeprefix("/pay/")
    changed = "/pay/" + token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    tampered = open_page(client, changed)
    assert tampered.status == 400
    assert "cannot be used" in tampered.text
    assert submit(client, changed, page, card).status_code == 400

    claims = tokens.verify(world.runtime.vault, token)
    old = tokens.LinkClaims(
        claims.gateway_connection_id,
        claims.ledger_connection_id,
        claims.customer_id,
        claims.invoice_number,
        claims.nonce,
        datetime.now(UTC) - timedelta(minutes=1),
    )
    expired_path = "/pay/" + tokens.sign(world.runtime.vault, old)
    expired = open_page(client, expired_path)
    assert expired.status == 410
    assert "expired" in expired.text
    assert submit(client, expired_path, page, card).status_code == 410
    assert sales_for(world, invoice) == []

    assert submit(client, path, page, card).status_code == 303  # the whole balance
    world.process()
    assert open_balance(world, invoice) == 0
    paid = open_page(client, path)
    assert paid.status == 409
    assert "nothing left to pay" in paid.text
    second = open_page(client, _link_of(claims, world))
    assert second.status == 409
    assert len(sales_for(world, invoice)) == 1


def _link_of(claims: tokens.LinkClaims, world: PaymentsWorld) -> str:
    """Another link for the same invoice (a second e-mail of it)."""
    return "/pay/" + tokens.sign(world.runtime.vault, claims)


def test_amounts_out_of_range_and_refused_tokens_name_the_field_and_post_nothing(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    _, invoice = _invoice(world)
    before = open_balance(world, invoice)
    path = _link(world, client, invoice)
    page = open_page(client, path)
    card = hosted_token(world, page.client_key)
    for amount in (f"{before + Decimal('0.01'):.2f}", "0", "-5.00", "ten"):
        refused = submit(client, path, page, card, amount=amount)
        assert refused.status_code == 422, amount
        assert 'data-testid="error-amount"' in refused.text
        if amount != "ten":  # a number out of range: what may be paid, named
            assert f"from 0.01 to {before:.2f}" in refused.text
        assert f'value="{amount}"' in refused.text  # what was typed stays in the form

    used = hosted_token(world, page.client_key)
    world.paytrace(
        "/v1/transactions/sale/pt_protect", {**used, "amount": "1.00", "invoice_id": "OTHER"}
    )
    refused = submit(client, path, open_page(client, path), used, amount="5.00")
    assert refused.status_code == 422
    assert 'data-testid="error-card"' in refused.text
    assert "enter the card again" in refused.text
    missing = submit(client, path, open_page(client, path), {}, amount="5.00")
    assert 'data-testid="error-card"' in missing.text

    assert sales_for(world, invoice) == []

    page = open_page(client, path)  # $0.29 is the sandbox's decline trigger
    declined = submit(client, path, page, hosted_token(world, page.client_key), amount="0.29")
    assert declined.status_code == 422
    assert 'data-testid="error-card"' in declined.text
    assert "declined" in declined.text
    assert "Nothing was charged; try another card" in declined.text
    assert "Your transaction was not approved" not in declined.text  # the reason only
    assert event_count(world) == 0
    world.process()
    assert open_balance(world, invoice) == before


def test_a_replayed_card_token_on_a_fresh_page_is_refused_and_charges_nothing_more(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    """The pay form posted again with the card token it already used but a new attempt id
    (a resent form from a reloaded page, a replayed request): the attempt key does not
    match the first charge, so only PayTrace's refusal of the used token stands between the
    payer and a second charge. It must stand, and the payer must be told what to do."""
    _, invoice = _invoice(world)
    before = open_balance(world, invoice)
    path = _link(world, client, invoice)
    page = open_page(client, path)
    card = hosted_token(world, page.client_key)
    first = submit(client, path, page, card, amount="10.00")
    assert first.status_code == 303, first.text

    fresh = open_page(client, path)
    assert fresh.attempt
    assert fresh.attempt != page.attempt
    replayed = submit(client, path, fresh, card, amount="10.00")
    assert replayed.status_code == 422, replayed.text
    assert 'data-testid="error-card"' in replayed.text
    assert "enter the card again" in replayed.text
    assert 'value="10.00"' in replayed.text  # what was typed stays in the form
    assert len(sales_for(world, invoice)) == 1
    with world.runtime.db.read() as session:
        outcomes = sorted(
            session.scalars(
                select(AuditEntry.action).where(AuditEntry.action.like("payment.pay_link.charge.%"))
            )
        )
    assert outcomes == ["payment.pay_link.charge.approved", "payment.pay_link.charge.failed"]

    world.process()
    assert event_count(world) == 1
    assert open_balance(world, invoice) == before - Decimal("10.00")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_finance_makes_a_link_by_api_and_e_mails_it_and_viewers_cannot(
    settings: Settings, tmp_path: Path, client
) -> None:  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path, people=2) as world, smtp_server() as (port, inbox):
        from ledgerlink import connections
        from tests.support.payments import ME

        with world.runtime.db.transaction() as session:
            mail = connections.create(
                session,
                world.runtime.vault,
                ME,
                kind="smtp",
                name="E-mail",
                settings={
                    "host": "127.0.0.1",
                    "port": port,
                    "security": "none",
                    "from_address": "finance@example.org",
                    "recipients": ["finance@example.org"],
                },
                secrets={},
            )
            connections.update(session, world.runtime.vault, ME, mail, is_active=True)
        world.runtime.settings.base_url = "https://pay.example.org"
        operator = make_user(world.runtime.db, Role.OPERATOR).token
        viewer = make_user(world.runtime.db, Role.VIEWER).token
        _, invoice = _invoice(world)
        assert make_link(client, viewer, invoice).status_code == 403
        unknown = make_link(client, operator, "NO-SUCH-INVOICE")
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["field"] == "invoice_number"
        bad = make_link(client, operator, invoice, send_email=True, email="not-an-address")
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "email"

        made = make_link(client, operator, invoice, send_email=True, email="payer@example.org")
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["emailed_to"] == "payer@example.org", body["email_problem"]
        assert body["url"].startswith("https://pay.example.org/pay/")
        text = inbox.body(0)
        assert body["url"] in text
        assert body["amount_due"] in text.replace(",", "")
        assert inbox.envelopes[0][1] == ["payer@example.org"]
        with world.runtime.db.read() as session:
            actions = set(session.scalars(select(AuditEntry.action)))
        assert {"payment.pay_link.created", "payment.pay_link.sent"} <= actions

        # the same from the portal: an error beside the field, what was typed kept
        csrf = sign_in(client, "operator@example.org")
        form = {"csrftoken": csrf, "expires_in_days": "7"}
        wrong = client.post(
            "/payments/pay-links", data={**form, "invoice_number": "NO-SUCH-INVOICE"}
        )
        assert wrong.status_code == 422
        assert 'data-testid="error-invoice_number"' in wrong.text
        assert 'value="NO-SUCH-INVOICE"' in wrong.text
        made_here = client.post("/payments/pay-links", data={**form, "invoice_number": invoice})
        assert made_here.status_code == 200
        assert 'data-testid="pay-link-made"' in made_here.text
        assert 'value="https://pay.example.org/pay/' in made_here.text

        # no public address configured: the link is still one a payer can open, on the
        # address finance reached ledgerlink at (not a bare /pay/… path)
        world.runtime.settings.base_url = ""
        unset = client.post("/payments/pay-links", data={**form, "invoice_number": invoice})
        assert f'value="{client.base_url}/pay/' in unset.text
        by_api = make_link(client, operator, invoice).json()
        assert by_api["url"].startswith(f"{client.base_url}/pay/")


def test_a_visa_paid_by_link_sends_the_invoices_lines_as_level_three(
    world: PaymentsWorld, client, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, invoice = _invoice(world)
    path = _link(world, client, invoice)
    page = open_page(client, path)
    paid = submit(client, path, page, hosted_token(world, page.client_key))
    assert paid.status_code == 303, paid.text

    [sale] = sales_for(world, invoice)
    sent = recorded(tmp_path, str(sale["transaction_id"]))
    assert sent is not None, "no Level 3 data reached PayTrace for the pay-link sale"
    assert sent["brand"] == "Visa"
    assert sent["invoice_id"] == invoice
    assert sent["line_count"] >= 1
    with world.runtime.db.read() as session:
        outcome = outcome_for(session, str(sale["transaction_id"]))
    assert outcome is not None
    assert outcome.status == "sent", outcome
    world.process()
    assert open_balance(world, invoice) == 0  # Level 3 changed nothing of the payment
