"""Pay links over the API: finance (operator role) makes a signed, expiring link for an
invoice and, if asked, e-mails it to the payer through the configured SMTP connection."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ledgerlink.paylinks.links import DEFAULT_DAYS, MAX_DAYS, PayLinkRefused, create_link
from ledgerlink.paylinks.mail import checked_address, send_link
from ledgerlink.web.api.inputs import INT64_MAX, CleanText
from ledgerlink.web.api.outputs import ResponseModel
from ledgerlink.web.deps import Operator, RuntimeDep
from ledgerlink.web.problems import problem_responses

router = APIRouter(prefix="/payments", tags=["payments"])


class PayLinkIn(BaseModel):
    invoice_number: CleanText = Field(min_length=1, max_length=64)
    connection_id: int | None = Field(
        default=None, strict=True, ge=1, le=INT64_MAX, description="PayTrace connection."
    )
    expires_in_days: int = Field(default=DEFAULT_DAYS, strict=True, ge=1, le=MAX_DAYS)
    send_email: bool = Field(default=False, description="E-mail the link to the payer.")
    email: CleanText = Field(
        default="", max_length=254, description="Where to send it; empty: the customer's e-mail."
    )


class PayLinkOut(ResponseModel):
    url: str = Field(description="The link (absolute when LEDGERLINK_BASE_URL is set).")
    path: str
    invoice_number: str
    customer_name: str
    amount_due: str
    currency: str
    due_date: dt.date | None
    expires_at: dt.datetime
    emailed_to: str | None = None
    email_problem: str | None = Field(
        default=None, description="Why the e-mail was not sent (the link works anyway)."
    )


@router.post(
    "/pay-links",
    status_code=201,
    summary="Make a pay link for an invoice (and e-mail it to the payer)",
    responses=problem_responses(502),
)
async def make_pay_link(
    body: PayLinkIn, request: Request, principal: Operator, runtime: RuntimeDep
) -> PayLinkOut:
    if body.send_email and body.email:
        checked_address(body.email)  # refused before a link is made
    link = await create_link(
        runtime,
        principal,
        invoice_number=body.invoice_number,
        gateway_connection_id=body.connection_id,
        expires_in_days=body.expires_in_days,
        origin=str(request.base_url),
    )
    emailed_to, problem = None, None
    if body.send_email:
        try:
            emailed_to = await send_link(
                runtime, principal, link, body.email or link.customer_email
            )
        except PayLinkRefused as refused:
            problem = refused.message
    return PayLinkOut(
        url=link.url,
        path=link.path,
        invoice_number=link.invoice_number,
        customer_name=link.customer_name,
        amount_due=link.amount_due.format_plain(),
        currency=link.amount_due.currency,
        due_date=link.due_date,
        expires_at=link.expires_at,
        emailed_to=emailed_to,
        email_problem=problem,
    )
