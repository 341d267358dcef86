"""A card saved through a pay link becomes the ledger customer's PayTrace profile.

The profile id is the one ledgerlink already uses for the customer (``payments.charges.
profile_for``: the member's PayTrace link, else the id derived from the member number, or
for Sage 500 the ``CustID`` form), so stored-card charges, payer tracing and the card-profile
sync find it. When the customer's member has no active PayTrace link yet, one is stored
(audited), as *Create Account* does for the customers it makes.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.connectors.errors import NotFound
from ledgerlink.connectors.paytrace.protect import Billing, HostedCard, PayTraceProtect
from ledgerlink.domain.accounts import CustomerAccount
from ledgerlink.identity.principal import system_principal
from ledgerlink.members.linking import LinkConflict, store_link
from ledgerlink.payments.targets import OpenLedger
from ledgerlink.runtime import Runtime
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import Connection

#: How the audit chain names links a payer's saved card made.
PAY_LINK = system_principal("pay link")


def link_profile(
    runtime: Runtime,
    ledger: OpenLedger,
    customer: CustomerAccount,
    profile: str,
    gateway: Connection,
) -> bool:
    """Link ``profile`` to the member of ``customer`` (in ``ledger``) unless the member is
    linked to a PayTrace profile already; True when a link was stored."""
    with runtime.db.transaction() as session:
        return link_profile_in(session, ledger, customer, profile, gateway)


def link_profile_in(
    session: Session,
    ledger: OpenLedger,
    customer: CustomerAccount,
    profile: str,
    gateway: Connection,
) -> bool:
    """:func:`link_profile` in the caller's transaction (a saved card's link is kept with
    the rest of what saving it did)."""
    member = session.scalar(
        select(MemberRow)
        .join(MemberLinkRow, MemberLinkRow.member_id == MemberRow.id)
        .where(
            MemberLinkRow.connection_id == ledger.connection.id,
            MemberLinkRow.customer_id == customer.id,
            MemberLinkRow.unlinked_at.is_(None),
        )
    )
    if member is None:
        return False
    linked = session.scalar(
        select(MemberLinkRow.id).where(
            MemberLinkRow.member_id == member.id,
            MemberLinkRow.connection_id == gateway.id,
            MemberLinkRow.unlinked_at.is_(None),
        )
    )
    if linked is not None:
        return False
    account = CustomerAccount(
        system=gateway.kind,
        id=profile,
        number=profile,
        name=customer.name,
        email=customer.email,
    )
    try:
        with session.begin_nested():
            store_link(session, PAY_LINK, member, gateway, account, created=True)
    except LinkConflict:
        return False  # the profile is another member's: charging it still works
    return True


async def store_card(
    protect: PayTraceProtect, profile: str, card: HostedCard, billing: Billing
) -> bool:
    """Create the customer's PayTrace profile with the card (True), or replace the card of
    the profile they have (False)."""
    try:
        await protect.gateway.customer(profile)
    except NotFound:
        await protect.create_profile(profile, card, billing)
        return True
    await protect.update_profile(profile, card, billing)
    return False
