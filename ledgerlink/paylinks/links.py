"""Making a pay link for an invoice, and opening one as the payer does.

A link names the PayTrace connection, the ledger, the ledger's customer and the invoice,
and expires (default 14 days). Opening it reads the invoice *live* from the ledger: what is
due is the ledger's open balance less what payers already paid through pay links that is
not posted yet (so a reload between the charge and its receipt cannot take the same money
twice). A link that was changed, has expired, or whose invoice has nothing left to pay
opens a page that says so and charges nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading
from ledgerlink.connectors.base import PaymentLedger
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.domain.accounts import CustomerAccount, Invoice
from ledgerlink.domain.money import Money
from ledgerlink.identity.principal import Principal
from ledgerlink.paylinks import signed_links, tokens
from ledgerlink.paylinks.signed_links import (
    DEFAULT_DAYS,
    IssuedLink,
    LinkKind,
    LinkUnusable,
    PayLinkRefused,
)
from ledgerlink.payments.targets import OpenLedger, PaymentTargets
from ledgerlink.runtime import Runtime
from ledgerlink.store.payment_models import PaymentCharge, PaymentEvent

__all__ = [
    "KEY_PREFIX",
    "PAY_LINK",
    "CreatedLink",
    "LinkUnusable",
    "LinkView",
    "PayLinkRefused",
    "claims_of",
    "create_link",
    "in_flight",
    "read_view",
    "view_link",
]

#: Charges made through pay links carry this prefix in their idempotency key.
KEY_PREFIX = "paylink:"
PAY_LINK = LinkKind(
    purpose=tokens.PAY,
    path="/pay",
    entity_type="pay_link",
    created_action="payment.pay_link.created",
    noun="payment link",
    nothing_done="nothing was charged",
)


@dataclass(frozen=True)
class CreatedLink(IssuedLink):
    invoice_number: str
    amount_due: Money
    due_date: dt.date | None


@dataclass(frozen=True)
class LinkView:
    """What the payer's page shows, read live."""

    claims: tokens.LinkClaims
    organisation: str
    invoice: Invoice
    customer: CustomerAccount
    amount_due: Money


async def create_link(
    runtime: Runtime,
    principal: Principal,
    *,
    invoice_number: str,
    gateway_connection_id: int | None = None,
    expires_in_days: int = DEFAULT_DAYS,
    now: dt.datetime | None = None,
    origin: str = "",
) -> CreatedLink:
    """A signed link for ``invoice_number`` (audited). Refused for an invoice the ledger
    does not have or that has nothing left to pay. The link starts with the configured
    ``base_url``, else ``origin`` (the address finance reached ledgerlink at): a payer
    cannot open a bare path."""
    number = invoice_number.strip()
    if not number:
        raise PayLinkRefused("invoice_number", "Enter the invoice number to ask payment for")
    signed_links.check_days(expires_in_days)
    targets = PaymentTargets(runtime)
    try:
        gateway = await targets.paytrace_connection(gateway_connection_id)
        opened = await targets.ledger_for_gateway(gateway)
        invoice = await opened.ledger.find_invoice(number)
        if invoice is None:
            raise PayLinkRefused(
                "invoice_number",
                f"Invoice {number} is not in {opened.connection.name}; check the number as "
                f"{opened.connection.name} shows it",
            )
        customer = await opened.ledger.get_customer(invoice.customer_id)
    finally:
        await targets.aclose()
    due = invoice.outstanding - await reading(
        runtime.db, lambda session: in_flight(session, number, invoice.outstanding.currency)
    )
    if not invoice.is_open or due.minor <= 0:
        raise PayLinkRefused(
            "invoice_number", f"Invoice {number} has nothing left to pay; no link is needed"
        )
    issued = await signed_links.issue(
        runtime,
        principal,
        PAY_LINK,
        gateway=gateway,
        ledger=opened,
        customer_id=invoice.customer_id,
        customer_name=customer.name,
        customer_email=customer.email,
        invoice_number=number,
        expires_in_days=expires_in_days,
        now=now,
        origin=origin,
        about={
            "invoice_number": number,
            "amount_due_minor": due.minor,
            "currency": due.currency,
        },
    )
    return CreatedLink(
        **vars(issued), invoice_number=number, amount_due=due, due_date=invoice.due_date
    )


def claims_of(
    runtime: Runtime, token: str, now: dt.datetime | None = None, *, expired_ok: bool = False
) -> tokens.LinkClaims:
    """The link's claims, or :class:`LinkUnusable` (changed, or expired unless
    ``expired_ok``: a receipt stays readable after its link expired)."""
    return signed_links.verify(runtime, PAY_LINK, token, now, expired_ok=expired_ok)


def in_flight(session: Session, invoice_number: str, currency: str) -> Money:
    """Paid through pay links for ``invoice_number`` but not yet posted to the ledger."""
    rows = session.execute(
        select(PaymentCharge.amount_minor, PaymentCharge.transaction_id).where(
            PaymentCharge.invoice_number == invoice_number,
            PaymentCharge.idempotency_key.startswith(KEY_PREFIX),
            PaymentCharge.status.in_(("approved", "sending", "unknown")),
            PaymentCharge.currency == currency,
        )
    ).all()
    waiting = 0
    for amount_minor, transaction_id in rows:
        if transaction_id:
            status = session.scalar(
                select(PaymentEvent.status).where(
                    PaymentEvent.dedup_key == f"{transaction_id}:sale"
                )
            )
            if status == "posted":
                continue
        waiting += int(amount_minor)
    return Money(waiting, currency)


async def view_link(runtime: Runtime, token: str, now: dt.datetime | None = None) -> LinkView:
    """What the payer sees: the organisation, the invoice, the payer and what is due now."""
    claims = claims_of(runtime, token, now)
    targets = PaymentTargets(runtime)
    try:
        opened = await targets.ledger_by_id(claims.ledger_connection_id)
        return await read_view(runtime, claims, opened)
    except UpstreamError:
        raise signed_links.unavailable(PAY_LINK, "The invoice") from None
    finally:
        await targets.aclose()


async def read_view(runtime: Runtime, claims: tokens.LinkClaims, opened: OpenLedger) -> LinkView:
    ledger: PaymentLedger = opened.ledger
    invoice = await ledger.find_invoice(claims.invoice_number)
    if invoice is None or invoice.customer_id != claims.customer_id:
        raise LinkUnusable(
            "tampered",
            "The invoice this link was made for is no longer there. Ask the sender for a new "
            "link; nothing was charged.",
        )
    customer = await ledger.get_customer(invoice.customer_id)
    due = invoice.outstanding - await reading(
        runtime.db,
        lambda session: in_flight(session, invoice.number, invoice.outstanding.currency),
    )
    if not invoice.is_open or due.minor <= 0:
        raise LinkUnusable(
            "paid",
            f"Invoice {invoice.number} is paid: there is nothing left to pay on this link. "
            "Thank you.",
        )
    return LinkView(
        claims=claims,
        organisation=signed_links.organisation(opened.connection),
        invoice=invoice,
        customer=customer,
        amount_due=due,
    )
