"""PayTrace's hosted card fields on a payer's page, both ways: what the page needs to draw
them (a fresh client key from the link's PayTrace connection, the address of PayTrace's
script and its origin, which the page's Content-Security-Policy allows), and what the page
posts back (the one-time token for the card, and the billing details PayTrace keeps with
it), the same for a pay link and a card-capture link."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.connectors.paytrace.protect import Billing, HostedCard, PayTraceProtect
from ledgerlink.connectors.paytrace.wiring import paytrace_gateway
from ledgerlink.domain.accounts import CustomerAccount
from ledgerlink.paylinks.signed_links import LinkKind, LinkUnusable, PayLinkRefused
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection

log = structlog.get_logger("ledgerlink.paylinks")
#: What the payer reads when PayTrace refuses the card fields' token (``1032``: expired,
#: used already, or not PayTrace's): the way forward is to type the card again.
CARD_REFUSED = (
    "PayTrace did not accept the card details (they expire after 15 minutes and work once); "
    "enter the card again"
)


@dataclass(frozen=True)
class CardForm:
    client_key: str
    script_url: str
    origin: str


async def card_form(runtime: Runtime, gateway_connection_id: int, kind: LinkKind) -> CardForm:
    """A client key for the page (PayTrace's keys last 15 minutes, so one per page);
    :class:`LinkUnusable` when PayTrace cannot give one now."""
    connection = await reading(
        runtime.db, lambda session: _detached(session, gateway_connection_id)
    )
    if connection is None:
        raise LinkUnusable("unavailable", f"Card payments are not set up; {kind.nothing_done}.")
    gateway = paytrace_gateway(runtime, connection)
    protect = PayTraceProtect(gateway)
    try:
        key = await protect.client_key()
    except UpstreamError as exc:
        log.warning("paylink.client_key_failed", error=exc.message)
        raise LinkUnusable(
            "unavailable",
            f"The card form cannot be shown just now. Try again in a few minutes; "
            f"{kind.nothing_done}.",
        ) from None
    finally:
        await gateway.aclose()
    return CardForm(key, protect.script_url, protect.origin)


def _detached(session: Session, connection_id: int) -> Connection | None:
    connection = session.get(Connection, connection_id)
    if connection is not None:
        session.expunge(connection)
    return connection


def hosted_card(hpf_token: str, enc_key: str) -> HostedCard:
    """The card fields' token as posted, or :class:`PayLinkRefused` (field ``card``) when the
    page sent none (the card fields were left empty, or the script did not run)."""
    if not hpf_token.strip() or not enc_key.strip():
        raise PayLinkRefused(
            "card", "Enter the card number, expiry and security code in the card fields"
        )
    return HostedCard(hpf_token.strip(), enc_key.strip())


def billing_for(customer: CustomerAccount, name_on_card: str) -> Billing:
    """What PayTrace keeps with the card: the name typed (else the customer's) and the
    ledger customer's address and contacts."""
    return Billing(
        name=name_on_card.strip()[:100] or customer.name,
        street_address=customer.address.line1,
        zip=customer.address.postal_code,
        email=customer.email,
        phone=customer.phone,
    )
