"""Who paid: a PayTrace customer id → the ledger customer it stands for, through links.

The PayTrace profile is linked to a member (or, as ledgerlink names the profiles it
creates, carries the member's number in the Sage 500 ``CustID`` form: ``C00042`` is member
``M00042``); the member is linked to one customer per ledger connection. A payer that
cannot be traced is not an error by itself: a card payment for an invoice by someone
without a profile is ordinary, and the invoice's customer is used.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.mapping.errors import MappingValueError
from ledgerlink.mapping.transforms.customer_ids import harmonise
from ledgerlink.store.member_models import MemberLinkRow, MemberRow


@dataclass(frozen=True)
class Payer:
    paytrace_customer_id: str
    member_number: str | None
    #: the ledger's customer id (SBC contact id, Sage 500 CustKey) through the member's link
    ledger_customer_id: str | None
    #: the number the ledger shows for it (SBC reference, Sage 500 CustID), when known
    ledger_customer_number: str | None


def find_payer(session: Session, paytrace_customer_id: str, ledger_connection_id: int) -> Payer:
    """Follow the links from a PayTrace customer id to the ledger connection's customer."""
    member_id = session.scalar(
        select(MemberLinkRow.member_id).where(
            MemberLinkRow.system == "paytrace",
            MemberLinkRow.customer_id == paytrace_customer_id,
            MemberLinkRow.unlinked_at.is_(None),
        )
    )
    number: str | None = None
    if member_id is None:
        try:
            number = harmonise(paytrace_customer_id, "paytrace", "member").value
        except MappingValueError:
            number = None
        if number is not None:
            member_id = session.scalar(select(MemberRow.id).where(MemberRow.number == number))
    elif number is None:
        number = session.scalar(select(MemberRow.number).where(MemberRow.id == member_id))
    if member_id is None:
        return Payer(paytrace_customer_id, None, None, None)
    link = session.execute(
        select(MemberLinkRow.customer_id, MemberLinkRow.customer_number).where(
            MemberLinkRow.member_id == member_id,
            MemberLinkRow.connection_id == ledger_connection_id,
            MemberLinkRow.unlinked_at.is_(None),
        )
    ).first()
    if link is None:
        return Payer(paytrace_customer_id, number, None, None)
    return Payer(paytrace_customer_id, number, link.customer_id, link.customer_number or None)
