"""Card-capture links: "save a card on file" for a member's ledger customer, no payment.

PayTrace cannot create a customer profile without a card or bank account, and ledgerlink
never sees a card, so the only way a customer with no profile gets one is for the payer to
type the card into PayTrace's hosted fields. Finance makes a signed link for a member (the
pay links' signing, with the purpose ``card``: a pay link never opens here, nor a capture
link as a pay link); the payer's page shows the organisation and the customer, the hosted
card fields and a consent line; submitting creates the PayTrace profile ledgerlink already
names for the customer (or replaces the card of the one there is), links it to the member
and audits it. A link saves one card: its use is claimed under the link's nonce (a unique
key, ``signed_link_uses``) before PayTrace is asked, so two submits at once store one card;
once used it shows what was saved and stores nothing more.

A use a crash left claimed is settled once its lease lapsed (:func:`settle_lapsed_uses`,
:mod:`ledgerlink.payments.lapsed_claims`), when the payer opens the link again and every
minute from a job: PayTrace's customer profile says whether the card landed (the profile
is there, and holds another card than before the claim); if so the use is done as if the
request had finished (the member's profile linked, audited), else it is given back and
the link saves a card again.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_db_thread, reading, writing
from ledgerlink.connectors.errors import NotFound, UpstreamError
from ledgerlink.connectors.paytrace.protect import PayTraceProtect, token_refused
from ledgerlink.connectors.paytrace.wiring import paytrace_gateway
from ledgerlink.domain.accounts import CustomerAccount
from ledgerlink.identity.principal import Principal
from ledgerlink.paylinks import signed_links, tokens
from ledgerlink.paylinks.card_form import CARD_REFUSED, billing_for, hosted_card
from ledgerlink.paylinks.profiles import link_profile_in, store_card
from ledgerlink.paylinks.signed_links import (
    DEFAULT_DAYS,
    IssuedLink,
    LinkKind,
    LinkUnusable,
    PayLinkRefused,
)
from ledgerlink.payments.charges import profile_for
from ledgerlink.payments.lapsed_claims import SETTLER, lapsed_before
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.payments.targets import OpenLedger, PaymentTargets
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import Connection

log = structlog.get_logger("ledgerlink.paylinks")

#: Who a saved card is audited as: the payer is not a ledgerlink user.
PAYER_ACTOR = "payer (card link)"
ENTITY = "card_capture_link"
SAVED = "payment.card_capture.saved"
#: A use a crash left claimed, settled from PayTrace's profile once its lease lapsed.
SAVED_AFTER_INTERRUPTION = "payment.card_capture.saved_after_interruption"
RELEASED_AFTER_INTERRUPTION = "payment.card_capture.released_after_interruption"
CARD_LINK = LinkKind(
    purpose=tokens.CARD,
    path="/card",
    entity_type=ENTITY,
    created_action="payment.card_capture_link.created",
    noun="card link",
    nothing_done="no card was saved",
)


def consent_line(organisation: str) -> str:
    return f"I authorise {organisation} to charge this card for my invoices"


@dataclass(frozen=True)
class CreatedCaptureLink(IssuedLink):
    member_number: str
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
    """What the confirmation page shows (kept with the link's use)."""

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
    signed_links.check_days(expires_in_days)
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
    issued = await signed_links.issue(
        runtime,
        principal,
        CARD_LINK,
        gateway=gateway,
        ledger=opened,
        customer_id=customer.id,
        customer_name=customer.name,
        customer_email=customer.email,
        expires_in_days=expires_in_days,
        now=now,
        origin=origin,
        about={"member_number": number, "paytrace_customer_id": profile},
    )
    return CreatedCaptureLink(**vars(issued), member_number=number, has_profile=has_profile)


def claims_of(
    runtime: Runtime, token: str, now: dt.datetime | None = None, *, expired_ok: bool = False
) -> tokens.LinkClaims:
    return signed_links.verify(runtime, CARD_LINK, token, now, expired_ok=expired_ok)


async def view_capture(runtime: Runtime, token: str) -> CaptureView:
    """What the payer sees: the organisation and the customer (read live)."""
    claims = claims_of(runtime, token)
    await _refuse_used(runtime, claims)
    targets = PaymentTargets(runtime)
    try:
        opened = await targets.ledger_by_id(claims.ledger_connection_id)
        customer = await opened.ledger.get_customer(claims.customer_id)
        return CaptureView(claims, signed_links.organisation(opened.connection), customer)
    except UpstreamError:
        raise signed_links.unavailable(CARD_LINK, "Your account") from None
    finally:
        await targets.aclose()


async def save_card(runtime: Runtime, token: str, form: CaptureForm) -> SavedCard:
    """Store the card behind ``form``'s hosted-fields token as the customer's PayTrace
    profile and link it to the member. Raises :class:`LinkUnusable` or
    :class:`PayLinkRefused` naming the field (consent, card); either way nothing stored.

    The link's one use is claimed (a unique key) before PayTrace is asked, so of two
    submits at once one stores the card and the other is told the link was used."""
    view = await view_capture(runtime, token)
    claims = view.claims
    if not form.consent:
        raise PayLinkRefused(
            "consent", f"Tick “{consent_line(view.organisation)}” to save the card"
        )
    card = hosted_card(form.hpf_token, form.enc_key)
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
        billing = billing_for(customer, form.name)
        try:
            claimed = await claim_use(runtime, view, gateway_connection, profile)
        except UpstreamError as exc:  # nothing claimed, nothing stored: the payer tries later
            raise PayLinkRefused("card", exc.message) from None
        if not claimed:
            await _refuse_used(runtime, claims)
            raise _being_used()  # given back since: the other submit did not save a card
        gateway = paytrace_gateway(runtime, gateway_connection)
        protect = PayTraceProtect(gateway)
        try:
            created = await store_card(protect, profile, card, billing)
            masked = (await gateway.customer(profile)).masked_card
        except UpstreamError as exc:
            await in_db_thread(lambda: signed_links.release(runtime, claims.nonce))
            if token_refused(exc):
                raise PayLinkRefused("card", CARD_REFUSED) from None
            raise PayLinkRefused("card", exc.message) from None
        except BaseException:
            await in_db_thread(lambda: signed_links.release(runtime, claims.nonce))
            raise
        finally:
            await gateway.aclose()
    finally:
        await targets.aclose()
    saved = SavedCard(view.organisation, customer.name, masked, created)
    await writing(
        runtime.db,
        lambda session: _record_saved(
            session, claims.nonce, saved, opened, customer, profile, gateway_connection
        ),
    )
    return saved


def _record_saved(
    session: Session,
    nonce: str,
    saved: SavedCard,
    opened: OpenLedger,
    customer: CustomerAccount,
    profile: str,
    gateway_connection: Connection,
    *,
    actor: str = PAYER_ACTOR,
    action: str = SAVED,
    finding: str = "",
) -> bool:
    """The use done: the member's profile linked, the use marked done with what it saved,
    audited; nothing when the use is not claimed any more (a settler got there first)."""
    if not signed_links.finish_use(session, nonce, asdict(saved)):
        return False
    linked = link_profile_in(session, opened, customer, profile, gateway_connection)
    audit.record(
        session,
        actor=actor,
        action=action,
        entity_type=ENTITY,
        entity_id=nonce,
        after={
            "ledger_customer_id": customer.id,
            "customer_name": customer.name,
            "paytrace_customer_id": profile,
            "masked_card": saved.masked_card,
            "created": saved.created,
            "member_linked": linked,
            "organisation": saved.organisation,
            "consent": consent_line(saved.organisation),
            **({"finding": finding} if finding else {}),
        },
    )
    return True


async def claim_use(
    runtime: Runtime, view: CaptureView, gateway_connection: Connection, profile: str
) -> bool:
    """Claim the link's one use before PayTrace is asked to store the card (True for the
    one caller that got it), keeping with the claim what settling it needs should the
    process die before the outcome is recorded: the connections, the customer, the
    profile and the card it held before (read now; :func:`settle_lapsed_uses`)."""
    before = await _card_on_file(runtime, gateway_connection, profile)
    customer = view.customer
    doing: dict[str, object] = {
        "ledger_connection_id": view.claims.ledger_connection_id,
        "paytrace_connection_id": gateway_connection.id,
        "ledger_customer_id": customer.id,
        "customer_name": customer.name,
        "customer_email": customer.email,
        "paytrace_customer_id": profile,
        "organisation": view.organisation,
        "card_before": before,
    }
    return await in_db_thread(
        lambda: signed_links.claim(runtime, CARD_LINK, view.claims.nonce, doing)
    )


async def saved_card(runtime: Runtime, token: str) -> SavedCard | None:
    """The card this link saved, if any (readable after the link expired)."""
    claims = claims_of(runtime, token, expired_ok=True)
    use = await reading(runtime.db, lambda session: signed_links.use_of(session, claims.nonce))
    if use is None or use.status != "done":
        return None
    done = use.outcome
    return SavedCard(
        organisation=str(done.get("organisation") or ""),
        customer_name=str(done.get("customer_name") or ""),
        masked_card=str(done.get("masked_card") or ""),
        created=bool(done.get("created")),
    )


async def _refuse_used(runtime: Runtime, claims: tokens.LinkClaims) -> None:
    """:class:`LinkUnusable` (``used``) when the link saved its card, or is saving it now."""
    use = await reading(runtime.db, lambda session: signed_links.use_of(session, claims.nonce))
    if use is not None and use.status != "done":
        # a claim a crash left: settled once it lapsed (the card landed, or the link works)
        await settle_lapsed_uses(runtime, nonce=claims.nonce)
        use = await reading(runtime.db, lambda session: signed_links.use_of(session, claims.nonce))
    if use is None:
        return
    if use.status != "done":
        raise _being_used()
    masked = str(use.outcome.get("masked_card") or "")
    raise LinkUnusable(
        "used",
        f"This card link was used already: the card {masked} is on file. Ask the sender for "
        "a new link to change it; nothing more was saved.",
    )


def _being_used() -> LinkUnusable:
    return LinkUnusable(
        "used",
        "This card link is saving a card at this moment (was the form sent twice?). Open the "
        "link again in a minute to see the card on file; nothing more was saved.",
    )


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


async def _card_on_file(runtime: Runtime, gateway_connection: Connection, profile: str) -> str:
    """The masked card the profile holds now ("" for none, or no profile): what a claim a
    crash left is compared with, to tell whether its card landed."""
    gateway = paytrace_gateway(runtime, gateway_connection)
    try:
        return (await gateway.customer(profile)).masked_card
    except NotFound:
        return ""
    finally:
        await gateway.aclose()


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


# -- uses a crash left claimed --------------------------------------------------------------


async def settle_lapsed_uses(runtime: Runtime, *, nonce: str | None = None) -> Counter[str]:
    """Settle the card links' uses (of the link ``nonce``, or all) a crash left claimed for
    longer than the lease, from PayTrace's customer profile; counts by what became of them
    (saved, released; ``unread`` when PayTrace could not be asked now, to be asked
    again; ``taken`` when another settler got there first). Each is audited."""
    counts: Counter[str] = Counter()
    before = lapsed_before(runtime)
    lapsed = await reading(
        runtime.db, lambda session: signed_links.lapsed_uses(session, CARD_LINK, before, nonce)
    )
    for found, doing in lapsed:
        counts[await _settle_use(runtime, found, doing)] += 1
    return counts


async def _settle_use(runtime: Runtime, nonce: str, doing: dict[str, object]) -> str:
    profile = str(doing.get("paytrace_customer_id") or "")
    gateway_id = doing.get("paytrace_connection_id")
    ledger_id = doing.get("ledger_connection_id")
    if not profile or not isinstance(gateway_id, int) or not isinstance(ledger_id, int):
        # claimed before claims said what they were doing: nothing to check it against
        return await _release_use(runtime, nonce, profile, "")
    targets = PaymentTargets(runtime)
    try:
        gateway_connection = await targets.paytrace_connection(gateway_id)
        now_on_file = await _card_on_file(runtime, gateway_connection, profile)
        opened = await targets.ledger_by_id(ledger_id)
    except (UpstreamError, PaymentProblem) as exc:
        log.warning("paylink.card_use_unsettled", nonce=nonce, why=str(exc))
        return "unread"
    finally:
        await targets.aclose()
    before = str(doing.get("card_before") or "")
    if not now_on_file or now_on_file == before:
        return await _release_use(runtime, nonce, profile, before)
    organisation = str(doing.get("organisation") or "")
    customer = CustomerAccount(
        system=opened.connection.kind,
        id=str(doing.get("ledger_customer_id") or ""),
        number="",
        name=str(doing.get("customer_name") or ""),
        email=str(doing.get("customer_email") or ""),
    )
    saved = SavedCard(organisation, customer.name, now_on_file, created=not before)
    finding = (
        f"The card {now_on_file} reached PayTrace profile {profile} but ledgerlink was "
        "interrupted before recording it: recorded now from PayTrace's profile; the link is "
        "used and saves nothing more"
    )
    kept = await writing(
        runtime.db,
        lambda session: _record_saved(
            session,
            nonce,
            saved,
            opened,
            customer,
            profile,
            gateway_connection,
            actor=SETTLER.actor,
            action=SAVED_AFTER_INTERRUPTION,
            finding=finding,
        ),
    )
    return "saved" if kept else "taken"


async def _release_use(runtime: Runtime, nonce: str, profile: str, before: str) -> str:
    on_file = f"it still holds {before}" if before else "it holds no card"
    finding = (
        "Saving a card with this link was interrupted before the card reached PayTrace "
        f"(profile {profile or 'unknown'}: {on_file}); the link was given back, so the "
        "customer can save the card with it again"
    )

    def give_back(session: Session) -> bool:
        if not signed_links.release_in(session, nonce):
            return False
        audit.record(
            session,
            actor=SETTLER.actor,
            action=RELEASED_AFTER_INTERRUPTION,
            entity_type=ENTITY,
            entity_id=nonce,
            after={"paytrace_customer_id": profile, "finding": finding},
        )
        return True

    return "released" if await writing(runtime.db, give_back) else "taken"
