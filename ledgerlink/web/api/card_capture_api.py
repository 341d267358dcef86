"""Card-capture links over the API: finance (operator role) makes a signed, expiring link
for a member's customer to save a card on file with PayTrace (no payment) and, if asked,
e-mails it through the configured SMTP connection; as ``POST /payments/pay-links``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from ledgerlink.paylinks.capture import create_capture_link
from ledgerlink.paylinks.capture_mail import send_capture_link
from ledgerlink.paylinks.links import DEFAULT_DAYS, MAX_DAYS, PayLinkRefused
from ledgerlink.paylinks.mail import checked_address
from ledgerlink.web.api.inputs import INT64_MAX, CleanText
from ledgerlink.web.api.outputs import ResponseModel
from ledgerlink.web.deps import Operator, RuntimeDep
from ledgerlink.web.problems import problem_responses

router = APIRouter(tags=["payments"])
MemberNumber = Annotated[CleanText, Path(max_length=40)]


class CaptureLinkIn(BaseModel):
    connection_id: int | None = Field(
        default=None, strict=True, ge=1, le=INT64_MAX, description="PayTrace connection."
    )
    expires_in_days: int = Field(default=DEFAULT_DAYS, strict=True, ge=1, le=MAX_DAYS)
    send_email: bool = Field(default=False, description="E-mail the link to the customer.")
    email: CleanText = Field(
        default="", max_length=254, description="Where to send it; empty: the customer's e-mail."
    )


class CaptureLinkOut(ResponseModel):
    url: str = Field(description="The link (absolute when LEDGERLINK_BASE_URL is set).")
    path: str
    member_number: str
    customer_name: str
    has_profile: bool = Field(
        description="PayTrace has a profile for the customer already (the link replaces its card)."
    )
    expires_at: dt.datetime
    emailed_to: str | None = None
    email_problem: str | None = Field(
        default=None, description="Why the e-mail was not sent (the link works anyway)."
    )


@router.post(
    "/members/{number}/card-capture-links",
    status_code=201,
    summary="Make a link for the member's customer to save a card on file (no payment)",
    responses=problem_responses(502),
)
async def make_capture_link(
    number: MemberNumber,
    body: CaptureLinkIn,
    request: Request,
    principal: Operator,
    runtime: RuntimeDep,
) -> CaptureLinkOut:
    if body.send_email and body.email:
        checked_address(body.email)  # refused before a link is made
    link = await create_capture_link(
        runtime,
        principal,
        member_number=number,
        gateway_connection_id=body.connection_id,
        expires_in_days=body.expires_in_days,
        origin=str(request.base_url),
    )
    emailed_to, problem = None, None
    if body.send_email:
        try:
            emailed_to = await send_capture_link(
                runtime, principal, link, body.email or link.customer_email
            )
        except PayLinkRefused as refused:
            problem = refused.message
    return CaptureLinkOut(
        url=link.url,
        path=link.path,
        member_number=link.member_number,
        customer_name=link.customer_name,
        has_profile=link.has_profile,
        expires_at=link.expires_at,
        emailed_to=emailed_to,
        email_problem=problem,
    )
