"""Card-capture links: "save a card on file" for a member's ledger customer, no payment.

PayTrace cannot create a customer profile without a card or bank account, and ledgerlink
never sees a card, so the only way a customer with no profile gets one is for the payer to
type the card into PayTrace's hosted fields. Finance makes a signed link for a member (the
pay links' signing, with the purpose ``card``: a pay link never opens here, nor a capture
link as a pay link); the payer's page shows the organisation and the customer, the hosted
card fields and a consent line; submitting creates the PayTrace profile ledgerlink already
names for the customer (or replaces the card of the one there is), links it to the member
and audits it. A link saves one card: once used (the audit chain says so) it shows what was
saved and stores nothing more.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_db_thread, reading, writing
from ledgerlink.connectors.errors import NotFound, UpstreamError
from ledgerlink.connectors.paytrace.protect import (
    Billing,
    HostedCard,
    PayTraceProtect,
    token_refused,
)
from ledgerlink.connectors.paytrace.wiring import paytrace_gateway
from ledgerlink.domain.accounts import CustomerAccount
from ledgerlink.identity.principal import Principal
from ledgerlink.paylinks import tokens
from ledgerlink.paylinks.links import DEFAULT_DAYS, MAX_DAYS, PayLinkRefused, now_utc
from ledgerlink.paylinks.links import _organisation as organisation_of
from ledgerlink.paylinks.profiles import link_profile
from ledgerlink.payments.charges import profile_for
from ledgerlink.payments.targets import PaymentTargets
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import AuditEntry, Connection

#: Who a saved card is audited as: the payer is not a ledgerlink user.
PAYER_ACTOR = "payer (card link)"
ENTITY = "card_capture_link"
SAVED = "payment.card_capture.saved"


def consent_line(organisation: str) -> str:
    return f"I authorise {organisation} to charge this card for my invoices"


class CaptureUnusable(Exception):
    """The link cannot save a card; ``reason`` says which page the payer sees."""

    def __init__(
        self, reason: Literal["tampered", "expired", "used", "unavailable"], message: str
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class CreatedCaptureLink:
    token: str
    path: str
    url: str
    member_number: str
    customer_name: str
    customer_email: str
    expires_at: dt.datetime
    nonce: str
    organisation: str
    has_profile: bool


@dataclass(frozen=True)
class CaptureView:
    claims: tokens.LinkClaims
    organisation: str
    customer: CustomerAccount


@dataclass(frozen=True)
class CaptureForm:
    hpf_token: str
    enc_key: str
    name: str = ""
    consent: bool = False


@dataclass(frozen=True)
class SavedCard:
    """What the confirmation page shows (read back from the audit chain)."""

    organisation: str
    customer_name: str
    masked_card: str
    created: bool


async def create_capture_link(
    runtime: Runtime,
    principal: Principal,
    *,
    member_number: str,
    gateway_connection_id: int | None = None,
    expires_in_days: int = DEFAULT_DAYS,
    now: dt.datetime | None = None,
    origin: str = "",
) -> CreatedCaptureLink:
    """A signed card-capture link for the member's customer in the ledger the PayTrace
    connection posts to (audited); refused for a member with no customer there. The link
    starts with ``base_url``, else ``origin`` (as pay links do)."""
    number = member_number.strip()
    if not 1 <= expires_in_days <= MAX_DAYS:
        raise PayLinkRefused(
            "expires_in_days", f"Choose how long the link works: 1 to {MAX_DAYS} days"
        )
    targets = PaymentTargets(runtime)
    try:
        gateway = await targets.paytrace_connection(gateway_connection_id)
        opened = await targets.ledger_for_gateway(gateway)
        customer_id = await reading(
            runtime.db, lambda session: _member_customer(session, number, opened.connection.id)
        )
        if customer_id is None:
            raise PayLinkRefused(
                "member",
                f"Member {number} has no customer in {opened.connection.name}; use Create "
                "Account or Link existing on the member's page first",
            )
        customer = await opened.ledger.get_customer(customer_id)
        profile = await reading(
            runtime.db, lambda session: profile_for(session, opened, customer.id, customer.number)
        )
        if profile is None:
            raise PayLinkRefused(
                "member",
                f"ledgerlink cannot name a PayTrace profile for member {number}; check the "
                "member number",
            )
        has_profile = await _has_profile(runtime, gateway, profile)
    finally:
        await targets.aclose()
    expires_at = (now or now_utc()) + dt.timedelta(days=expires_in_days)
    claims = tokens.LinkClaims(
        gateway_connection_id=gateway.id,
        ledger_connection_id=opened.connection.id,
        customer_id=customer.id,
        invoice_number="",
        nonce=tokens.new_nonce(),
        expires_at=expires_at,
        purpose=tokens.CARD,
    )
    token = tokens.sign(runtime.vault, claims)
    path = f"/card/{token}"

    def record(session: Session) -> None:
        audit.record(
            session,
            actor=principal.actor,
            action="payment.card_capture_link.created",
            entity_type=ENTITY,
            entity_id=claims.nonce,
            after={
                "member_number": number,
                "customer_id": customer.id,
                "ledger_connection_id": opened.connection.id,
                "paytrace_connection_id": gateway.id,
                "paytrace_customer_id": profile,
                "expires_at": expires_at.isoformat(),
            },
        )

    await writing(runtime.db, record)
    return CreatedCaptureLink(
        token=token,
        path=path,
        url=(runtime.settings.base_url or origin).rstrip("/") + path,
        member_number=number,
        customer_name=customer.name,
        customer_email=customer.email,
        expires_at=expires_at,
        nonce=claims.nonce,
        organisation=organisation_of(opened.connection),
        has_profile=has_profile,
    )


def claims_of(
    runtime: Runtime, token: str, now: dt.datetime | None = None, *, expired_ok: bool = False
) -> tokens.LinkClaims:
    try:
        claims = tokens.verify(runtime.vault, token, tokens.CARD)
    except tokens.BadToken:
        raise CaptureUnusable(
            "tampered",
            "This card link is not valid: it may have been changed or copied incompletely. "
            "Ask the sender for a new link; no card was saved.",
        ) from None
    if not expired_ok and (now or now_utc()) >= claims.expires_at:
        raise CaptureUnusable(
            "expired",
            f"This card link expired on {claims.expires_at:%d %B %Y}. Ask the sender for a new "
            "link; no card was saved.",
        )
    return claims


async def view_capture(runtime: Runtime, token: str) -> CaptureView:
    """What the payer sees: the organisation and the customer (read live)."""
    claims = claims_of(runtime, token)
    await _refuse_used(runtime, claims)
    targets = PaymentTargets(runtime)
    try:
        opened = await targets.ledger_by_id(claims.ledger_connection_id)
        customer = await opened.ledger.get_customer(claims.customer_id)
        return CaptureView(claims, organisation_of(opened.connection), customer)
    except UpstreamError:
        raise CaptureUnusable(
            "unavailable",
            "Your account cannot be read just now. Try again in a few minutes; no card was saved.",
        ) from None
    finally:
        await targets.aclose()


async def save_card(runtime: Runtime, token: str, form: CaptureForm) -> SavedCard:
    """Store the card behind ``form``'s hosted-fields token as the customer's PayTrace
    profile and link it to the member. Raises :class:`CaptureUnusable` or
    :class:`PayLinkRefused` naming the field (consent, card); either way nothing stored."""
    view = await view_capture(runtime, token)
    claims = view.claims
    if not form.consent:
        raise PayLinkRefused(
            "consent", f"Tick “{consent_line(view.organisation)}” to save the card"
        )
    if not form.hpf_token.strip() or not form.enc_key.strip():
        raise PayLinkRefused(
            "card", "Enter the card number, expiry and security code in the card fields"
        )
    card = HostedCard(form.hpf_token.strip(), form.enc_key.strip())
    targets = PaymentTargets(runtime)
    try:
        opened = await targets.ledger_by_id(claims.ledger_connection_id)
        customer = view.customer
        profile = await reading(
            runtime.db, lambda session: profile_for(session, opened, customer.id, customer.number)
        )
        if profile is None:
            raise PayLinkRefused(
                "card", "This card cannot be kept for your account; ask the sender to call you"
            )
        gateway_connection = await targets.paytrace_connection(claims.gateway_connection_id)
        billing = Billing(
            name=form.name.strip()[:100] or customer.name,
            street_address=customer.address.line1,
            zip=customer.address.postal_code,
            email=customer.email,
            phone=customer.phone,
        )
        gateway = paytrace_gateway(runtime, gateway_connection)
        protect = PayTraceProtect(gateway)
        try:
            created = await _store(protect, profile, card, billing)
            masked = (await gateway.customer(profile)).masked_card
        except UpstreamError as exc:
            if token_refused(exc):
                raise PayLinkRefused(
                    "card",
                    "PayTrace did not accept the card details (they expire after 15 minutes "
                    "and work once); enter the card again",
                ) from None
            raise PayLinkRefused("card", exc.message) from None
        finally:
            await gateway.aclose()
        linked = await in_db_thread(
            lambda: link_profile(runtime, opened, customer, profile, gateway_connection)
        )
    finally:
        await targets.aclose()

    def record(session: Session) -> None:
        audit.record(
            session,
            actor=PAYER_ACTOR,
            action=SAVED,
            entity_type=ENTITY,
            entity_id=claims.nonce,
            after={
                "ledger_customer_id": customer.id,
                "customer_name": customer.name,
                "paytrace_customer_id": profile,
                "masked_card": masked,
                "created": created,
                "member_linked": linked,
                "organisation": view.organisation,
                "consent": consent_line(view.organisation),
            },
        )

    await writing(runtime.db, record)
    return SavedCard(view.organisation, customer.name, masked, created)


async def saved_card(runtime: Runtime, token: str) -> SavedCard | None:
    """The card this link saved, if any (readable after the link expired)."""
    claims = claims_of(runtime, token, expired_ok=True)
    entry = await reading(runtime.db, lambda session: _saved(session, claims.nonce))
    if entry is None:
        return None
    after = entry.after or {}
    return SavedCard(
        organisation=str(after.get("organisation") or ""),
        customer_name=str(after.get("customer_name") or ""),
        masked_card=str(after.get("masked_card") or ""),
        created=bool(after.get("created")),
    )


async def _refuse_used(runtime: Runtime, claims: tokens.LinkClaims) -> None:
    entry = await reading(runtime.db, lambda session: _saved(session, claims.nonce))
    if entry is not None:
        masked = str((entry.after or {}).get("masked_card") or "")
        raise CaptureUnusable(
            "used",
            f"This card link was used already: the card {masked} is on file. Ask the sender "
            "for a new link to change it; nothing more was saved.",
        )


def _saved(session: Session, nonce: str) -> AuditEntry | None:
    entry = session.scalar(
        select(AuditEntry)
        .where(
            AuditEntry.action == SAVED,
            AuditEntry.entity_type == ENTITY,
            AuditEntry.entity_id == nonce,
        )
        .limit(1)
    )
    if entry is not None:
        session.expunge(entry)
    return entry


def _member_customer(session: Session, number: str, ledger_connection_id: int) -> str | None:
    return session.scalar(
        select(MemberLinkRow.customer_id)
        .join(MemberRow, MemberRow.id == MemberLinkRow.member_id)
        .where(
            MemberRow.number == number,
            MemberLinkRow.connection_id == ledger_connection_id,
            MemberLinkRow.unlinked_at.is_(None),
        )
    )


async def _has_profile(runtime: Runtime, gateway_connection: Connection, profile: str) -> bool:
    """Whether PayTrace has the profile already (what finance is told; False when unsure)."""
    gateway = paytrace_gateway(runtime, gateway_connection)
    try:
        await gateway.customer(profile)
    except UpstreamError:  # NotFound among them
        return False
    finally:
        await gateway.aclose()
    return True


async def _store(
    protect: PayTraceProtect, profile: str, card: HostedCard, billing: Billing
) -> bool:
    """Create the profile with the card (True), or replace the card of the one there is."""
    try:
        await protect.gateway.customer(profile)
    except NotFound:
        await protect.create_profile(profile, card, billing)
        return True
    await protect.update_profile(profile, card, billing)
    return False
