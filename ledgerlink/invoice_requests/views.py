"""What the member page and the API show of a member's invoice payment requests: the
setting (with the autopay consent) and the latest requests, in finance words."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.domain.money import Money
from ledgerlink.invoice_requests.preferences import MODES, Preference, preference_of
from ledgerlink.invoice_requests.states import LABELS
from ledgerlink.members.registry import get_member
from ledgerlink.store.invoice_request_models import InvoiceRequest
from ledgerlink.store.models import Connection


@dataclass(frozen=True)
class RequestRow:
    invoice_number: str
    ledger: str
    mode: str
    state: str
    state_label: str
    amount: str
    due_date: dt.date | None
    emailed_to: str
    transaction_id: str
    message: str
    updated_at: dt.datetime


@dataclass(frozen=True)
class MemberPanel:
    preference: Preference
    requests: list[RequestRow]
    modes: dict[str, str]


def member_requests(session: Session, member_id: int, limit: int = 20) -> list[RequestRow]:
    """The member's latest requests, newest first."""
    rows = session.execute(
        select(InvoiceRequest, Connection.name)
        .join(Connection, Connection.id == InvoiceRequest.connection_id)
        .where(InvoiceRequest.member_id == member_id)
        .order_by(InvoiceRequest.id.desc())
        .limit(limit)
    ).all()
    return [
        RequestRow(
            invoice_number=row.invoice_number,
            ledger=str(ledger),
            mode=row.mode,
            state=row.state,
            state_label=LABELS.get(row.state, row.state),
            amount=Money(row.amount_minor, row.currency).format_display(),
            due_date=row.due_date,
            emailed_to=row.emailed_to,
            transaction_id=row.transaction_id,
            message=row.message,
            updated_at=row.updated_at,
        )
        for row, ledger in rows
    ]


def member_panel(session: Session, member_number: str) -> MemberPanel:
    member = get_member(session, member_number)
    return MemberPanel(
        preference=preference_of(session, member.number),
        requests=member_requests(session, member.id),
        modes=MODES,
    )
