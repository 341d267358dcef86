"""Card-capture links over the API: finance (operator role) makes a signed, expiring link
for a member's customer to save a card on file with PayTrace (no payment) and, if asked,
e-mails it through the configured SMTP connection; as ``POST /payments/pay-links``
(:mod:`ledgerlink.web.api.link_delivery`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import Field

from ledgerlink.paylinks.capture import CreatedCaptureLink, create_capture_link
from ledgerlink.paylinks.capture_mail import send_capture_link
from ledgerlink.web.api.inputs import CleanText
from ledgerlink.web.api.link_delivery import LinkIn, LinkOut, make_and_send
from ledgerlink.web.deps import Operator, RuntimeDep
from ledgerlink.web.problems import problem_responses

router = APIRouter(tags=["payments"])
MemberNumber = Annotated[CleanText, Path(max_length=40)]


class CaptureLinkIn(LinkIn):
    """What finance asks for (named apart so the OpenAPI document keeps its schema name)."""


class CaptureLinkOut(LinkOut):
    member_number: str
    has_profile: bool = Field(
        description="PayTrace has a profile for the customer already (the link replaces its card)."
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
    async def send(link: CreatedCaptureLink, to: str) -> str:
        return await send_capture_link(runtime, principal, link, to)

    link, delivered = await make_and_send(
        body,
        lambda: create_capture_link(
            runtime,
            principal,
            member_number=number,
            gateway_connection_id=body.connection_id,
            expires_in_days=body.expires_in_days,
            origin=str(request.base_url),
        ),
        send,
    )
    return CaptureLinkOut(
        **delivered, member_number=link.member_number, has_profile=link.has_profile
    )
