"""Members → *Ask for a card on file*: finance makes a card-capture link for a member whose
ledger customer is linked (after *Create Account* or *Link existing*), copies it or e-mails
it to the customer (operator role; audited in the use case). The customer's card becomes
their PayTrace profile, which PayTrace cannot create without one. The form's common part is
:mod:`ledgerlink.web.portal.link_forms`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledgerlink.paylinks.capture import CreatedCaptureLink, create_capture_link
from ledgerlink.paylinks.capture_mail import send_capture_link
from ledgerlink.web.deps import Operator, ReadSession, RuntimeDep
from ledgerlink.web.portal.link_forms import LinkForm, gateway_choices, make_link_page
from ledgerlink.web.portal.rendering import render

router = APIRouter()


@router.get("/members/{number}/card-capture-link")
def capture_link_form(request: Request, number: str, _: Operator, session: ReadSession) -> Response:
    return render(
        request,
        "capture_link_new.html",
        number=number[:40],
        form=LinkForm(),
        gateways=gateway_choices(session),
        errors={},
        problem="",
        link=None,
    )


@router.post("/members/{number}/card-capture-link")
async def capture_link_create(
    request: Request, number: str, principal: Operator, runtime: RuntimeDep
) -> Response:
    form = LinkForm.from_form(await request.form())

    async def make(days: int) -> CreatedCaptureLink:
        return await create_capture_link(
            runtime,
            principal,
            member_number=number[:40],
            gateway_connection_id=form.gateway_connection_id,
            expires_in_days=days,
            origin=str(request.base_url),
        )

    async def send(link: CreatedCaptureLink, to: str) -> str:
        return await send_capture_link(runtime, principal, link, to)

    return await make_link_page(
        request,
        runtime,
        form,
        template="capture_link_new.html",
        subject_field="member",
        make=make,
        send=send,
        number=number[:40],
    )
