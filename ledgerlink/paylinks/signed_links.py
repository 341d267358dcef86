"""A signed link with a purpose: issued, verified, expired and audited the same way whatever
it is for.

Pay links (an invoice to pay) and card-capture links (a card to keep on file) are the same
thing for a different purpose: claims naming the PayTrace connection, the ledger and its
customer, signed by :mod:`ledgerlink.paylinks.tokens` with the purpose inside the signature
(one kind never opens as the other), an expiry, an audit entry when finance makes one, and
a page that says why a link cannot be used. What differs (the purpose, the address, the
audit names, the words the payer reads) is a :class:`LinkKind`; everything else is here,
so a third kind of link is a new ``LinkKind`` and its own page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledgerlink.blocking import writing
from ledgerlink.identity.principal import Principal
from ledgerlink.paylinks import tokens
from ledgerlink.payments.charge_outcomes import ChargeRefused
from ledgerlink.payments.targets import OpenLedger
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.models import Connection
from ledgerlink.store.signed_link_models import SignedLinkUse
from ledgerlink.store.types import utcnow

DEFAULT_DAYS = 14
MAX_DAYS = 90

Reason = Literal["tampered", "expired", "paid", "used", "unavailable"]


class PayLinkRefused(ChargeRefused):
    """A link was not made, or what its page was sent for not done: ``field`` names the
    input (a pay link's amount or card, a card-capture link's consent, finance's e-mail)."""


class LinkUnusable(Exception):
    """The link cannot be used; ``reason`` says which page the payer sees (changed, expired,
    paid, used already, or the ledger or PayTrace not answering now)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class LinkKind:
    """What one kind of signed link is for, and what its reader is told."""

    #: signed into the token (:data:`tokens.PAY`, :data:`tokens.CARD`)
    purpose: str
    #: where the payer opens it: ``/pay`` + ``/<token>``
    path: str
    #: how the audit chain names it (``pay_link``) and its making (``…created``)
    entity_type: str
    created_action: str
    #: what the reader calls it ("payment link") and what did not happen ("nothing was
    #: charged") when it cannot be used
    noun: str
    nothing_done: str


@dataclass(frozen=True)
class IssuedLink:
    """A link as finance receives it (to copy, or to e-mail)."""

    token: str
    path: str
    url: str
    nonce: str
    expires_at: dt.datetime
    organisation: str
    customer_name: str
    customer_email: str


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_days(expires_in_days: int) -> None:
    """Refuse a lifetime out of range before anything is read or made."""
    if not 1 <= expires_in_days <= MAX_DAYS:
        raise PayLinkRefused(
            "expires_in_days", f"Choose how long the link works: 1 to {MAX_DAYS} days"
        )


def organisation(connection: Connection) -> str:
    """The name the payer knows the ledger's organisation by (its settings' name, else the
    connection's)."""
    settings = connection.settings or {}
    for name in ("organisation_name", "business_name", "company_name"):
        if settings.get(name):
            return str(settings[name])
    return connection.name


async def issue(
    runtime: Runtime,
    principal: Principal,
    kind: LinkKind,
    *,
    gateway: Connection,
    ledger: OpenLedger,
    customer_id: str,
    customer_name: str,
    customer_email: str,
    invoice_number: str = "",
    expires_in_days: int,
    now: dt.datetime | None,
    origin: str,
    about: dict[str, object],
) -> IssuedLink:
    """Sign a new link of ``kind`` for ``customer_id`` in ``ledger`` and audit its making
    (``about`` and the ids it names). The address starts with the configured ``base_url``,
    else ``origin`` (the address finance reached ledgerlink at): a bare path opens nothing
    in a payer's mail."""
    expires_at = (now or now_utc()) + dt.timedelta(days=expires_in_days)
    claims = tokens.LinkClaims(
        gateway_connection_id=gateway.id,
        ledger_connection_id=ledger.connection.id,
        customer_id=customer_id,
        invoice_number=invoice_number,
        nonce=tokens.new_nonce(),
        expires_at=expires_at,
        purpose=kind.purpose,
    )
    token = tokens.sign(runtime.vault, claims)
    path = f"{kind.path}/{token}"

    def record(session: Session) -> None:
        audit.record(
            session,
            actor=principal.actor,
            action=kind.created_action,
            entity_type=kind.entity_type,
            entity_id=claims.nonce,
            after={
                **about,
                "customer_id": customer_id,
                "ledger_connection_id": ledger.connection.id,
                "paytrace_connection_id": gateway.id,
                "expires_at": expires_at.isoformat(),
            },
        )

    await writing(runtime.db, record)
    return IssuedLink(
        token=token,
        path=path,
        url=(runtime.settings.base_url or origin).rstrip("/") + path,
        nonce=claims.nonce,
        expires_at=expires_at,
        organisation=organisation(ledger.connection),
        customer_name=customer_name,
        customer_email=customer_email,
    )


def verify(
    runtime: Runtime,
    kind: LinkKind,
    token: str,
    now: dt.datetime | None = None,
    *,
    expired_ok: bool = False,
) -> tokens.LinkClaims:
    """The claims of a link of ``kind``, or :class:`LinkUnusable`: changed (or a link of
    another kind), or expired unless ``expired_ok`` (what a link did stays readable after
    it expired)."""
    try:
        claims = tokens.verify(runtime.vault, token, kind.purpose)
    except tokens.BadToken:
        raise LinkUnusable(
            "tampered",
            f"This {kind.noun} is not valid: it may have been changed or copied incompletely. "
            f"Ask the sender for a new link; {kind.nothing_done}.",
        ) from None
    if not expired_ok and (now or now_utc()) >= claims.expires_at:
        raise LinkUnusable(
            "expired",
            f"This {kind.noun} expired on {claims.expires_at:%d %B %Y}. Ask the sender for a "
            f"new link; {kind.nothing_done}.",
        )
    return claims


def unavailable(kind: LinkKind, what: str) -> LinkUnusable:
    """``what`` (the invoice, the account) cannot be read now: the payer tries later."""
    return LinkUnusable(
        "unavailable",
        f"{what} cannot be read just now. Try again in a few minutes; {kind.nothing_done}.",
    )


@dataclass(frozen=True)
class LinkUse:
    """A one-use link's use: ``claimed`` (being used now) or ``done``, and what it did (or,
    while claimed, what it is doing: what settling it after a crash needs)."""

    status: str
    outcome: dict[str, object]


def claim(
    runtime: Runtime, kind: LinkKind, nonce: str, doing: dict[str, object] | None = None
) -> bool:
    """Claim the one use of the link ``nonce`` before doing what it is for: True for the
    one caller that inserted the key, False for any other (the link is used, or being used
    at this moment). The unique key decides, not a read before a write, so two submits at
    once cannot both pass. ``doing`` is kept with the claim: what a claim a crash left is
    settled from once it lapsed (:func:`lapsed_uses`); the claim's time is the runtime's
    clock, the one the lease is judged on."""
    try:
        with runtime.db.transaction() as session:
            session.add(
                SignedLinkUse(
                    purpose=kind.purpose,
                    nonce=nonce,
                    status="claimed",
                    outcome=dict(doing or {}),
                    claimed_at=runtime.clock.now(),
                )
            )
            session.flush()
    except IntegrityError:
        return False
    return True


def release(runtime: Runtime, nonce: str) -> bool:
    """Give a claimed use back (what the link was for did not happen), so the link works
    again; a use that is done stays. True when this call gave it back."""
    with runtime.db.transaction() as session:
        return release_in(session, nonce)


def release_in(session: Session, nonce: str) -> bool:
    """:func:`release` in the caller's transaction (kept with its audit entry)."""
    released = session.scalar(
        delete(SignedLinkUse)
        .where(SignedLinkUse.nonce == nonce, SignedLinkUse.status == "claimed")
        .returning(SignedLinkUse.id)
    )
    return released is not None


def finish_use(session: Session, nonce: str, outcome: dict[str, object]) -> bool:
    """Mark the claimed use done with what it did, in the caller's transaction (the one that
    keeps the rest of the outcome). False when it is not claimed any more (a settler of a
    lapsed claim got there first): the caller then keeps nothing twice."""
    done = session.scalar(
        update(SignedLinkUse)
        .where(SignedLinkUse.nonce == nonce, SignedLinkUse.status == "claimed")
        .values(status="done", outcome=dict(outcome), finished_at=utcnow())
        .returning(SignedLinkUse.id)
        .execution_options(synchronize_session=False)
    )
    return done is not None


def use_of(session: Session, nonce: str) -> LinkUse | None:
    use = session.scalar(select(SignedLinkUse).where(SignedLinkUse.nonce == nonce))
    if use is None:
        return None
    return LinkUse(use.status, dict(use.outcome or {}))


def lapsed_uses(
    session: Session, kind: LinkKind, before: dt.datetime, nonce: str | None = None
) -> list[tuple[str, dict[str, object]]]:
    """Uses of ``kind`` (or of the one link ``nonce``) claimed before ``before`` and never
    done or given back: a crash between the claim and its outcome. With what each was
    doing (empty for a claim made before that was kept)."""
    query = select(SignedLinkUse.nonce, SignedLinkUse.outcome).where(
        SignedLinkUse.purpose == kind.purpose,
        SignedLinkUse.status == "claimed",
        SignedLinkUse.claimed_at < before,
    )
    if nonce is not None:
        query = query.where(SignedLinkUse.nonce == nonce)
    rows = session.execute(query.order_by(SignedLinkUse.id).limit(100)).all()
    return [(str(found), dict(doing or {})) for found, doing in rows]
