"""Payments → *Ask for payment by link*: finance makes a pay link for an invoice, copies it
or e-mails it to the payer (operator role; audited in the use case). The form's common part
is :mod:`ledgerlink.web.portal.link_forms`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledgerlink.paylinks.links import CreatedLink, create_link
from ledgerlink.paylinks.mail import send_link
from ledgerlink.web.deps import Operator, ReadSession, RuntimeDep
from ledgerlink.web.portal.link_forms import LinkForm, gateway_choices, make_link_page
from ledgerlink.web.portal.rendering import render

router = APIRouter()


@dataclass(frozen=True)
class PayLinkForm(LinkForm):
    invoice_number: str = ""


@router.get("/payments/pay-links")
def pay_link_form(
    request: Request, _: Operator, session: ReadSession, invoice: str = ""
) -> Response:
    return render(
        request,
        "pay_link_new.html",
        form=PayLinkForm(invoice_number=invoice[:64]),
        gateways=gateway_choices(session),
        errors={},
        problem="",
        link=None,
    )


@router.post("/payments/pay-links")
async def pay_link_create(request: Request, principal: Operator, runtime: RuntimeDep) -> Response:
    data = await request.form()
    form = PayLinkForm(
        **vars(LinkForm.from_form(data)),
        invoice_number=str(data.get("invoice_number") or "").strip()[:64],
    )

    async def make(days: int) -> CreatedLink:
        return await create_link(
            runtime,
            principal,
            invoice_number=form.invoice_number,
            gateway_connection_id=form.gateway_connection_id,
            expires_in_days=days,
            origin=str(request.base_url),
        )

    async def send(link: CreatedLink, to: str) -> str:
        return await send_link(runtime, principal, link, to)

    return await make_link_page(
        request,
        runtime,
        form,
        template="pay_link_new.html",
        subject_field="invoice_number",
        make=make,
        send=send,
    )
