"""Pay links over the API: finance (operator role) makes a signed, expiring link for an
invoice and, if asked, e-mails it to the payer through the configured SMTP connection."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from pydantic import Field

from ledgerlink.paylinks.links import CreatedLink, create_link
from ledgerlink.paylinks.mail import send_link
from ledgerlink.web.api.inputs import CleanText
from ledgerlink.web.api.link_delivery import LinkIn, LinkOut, make_and_send
from ledgerlink.web.deps import Operator, RuntimeDep
from ledgerlink.web.problems import problem_responses

router = APIRouter(prefix="/payments", tags=["payments"])


class PayLinkIn(LinkIn):
    invoice_number: CleanText = Field(min_length=1, max_length=64)


class PayLinkOut(LinkOut):
    invoice_number: str
    amount_due: str
    currency: str
    due_date: dt.date | None


@router.post(
    "/pay-links",
    status_code=201,
    summary="Make a pay link for an invoice (and e-mail it to the payer)",
    responses=problem_responses(502),
)
async def make_pay_link(
    body: PayLinkIn, request: Request, principal: Operator, runtime: RuntimeDep
) -> PayLinkOut:
    async def send(link: CreatedLink, to: str) -> str:
        return await send_link(runtime, principal, link, to)

    link, delivered = await make_and_send(
        body,
        lambda: create_link(
            runtime,
            principal,
            invoice_number=body.invoice_number,
            gateway_connection_id=body.connection_id,
            expires_in_days=body.expires_in_days,
            origin=str(request.base_url),
        ),
        send,
    )
    return PayLinkOut(
        **delivered,
        invoice_number=link.invoice_number,
        amount_due=link.amount_due.format_plain(),
        currency=link.amount_due.currency,
        due_date=link.due_date,
    )
