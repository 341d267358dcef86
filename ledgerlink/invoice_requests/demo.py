"""The demo's member with 'e-mail a pay link' on, so a new invoice raised for them in the
SBC simulator (once the demo's members are linked) shows a payment request on their page."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import cli_principal
from ledgerlink.store import audit
from ledgerlink.store.invoice_request_models import InvoiceRequestSetting
from ledgerlink.store.member_models import MemberRow

DEMO_MEMBER = "M00001"


def ensure_demo_choice(session: Session) -> bool:
    """Turn 'e-mail a pay link' on for the demo member unless a choice was made already;
    True when it was turned on now."""
    member = session.scalar(select(MemberRow).where(MemberRow.number == DEMO_MEMBER))
    if member is None or session.get(InvoiceRequestSetting, member.id) is not None:
        return False
    actor = cli_principal().actor
    session.add(InvoiceRequestSetting(member_id=member.id, mode="email", updated_by=actor))
    audit.record(
        session,
        actor=actor,
        action="invoice_requests.setting_changed",
        entity_type="member",
        entity_id=DEMO_MEMBER,
        after={"mode": "email", "why": "demo data"},
    )
    return True
