"""Payments → *Ask for payment by link*: finance makes a pay link for an invoice, copies it
or e-mails it to the payer (operator role; audited in the use case)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledgerlink.blocking import reading
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.paylinks.links import DEFAULT_DAYS, PayLinkRefused, create_link
from ledgerlink.paylinks.mail import checked_address, send_link
from ledgerlink.payments.gateway_connections import paytrace_connections
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.web.deps import Operator, ReadSession, RuntimeDep
from ledgerlink.web.portal.rendering import render

router = APIRouter()
FIELDS = ("invoice_number", "expires_in_days", "email", "connection_id")


@dataclass(frozen=True)
class LinkForm:
    invoice_number: str = ""
    expires_in_days: str = str(DEFAULT_DAYS)
    send_email: bool = False
    email: str = ""
    connection_id: str = ""


@router.get("/payments/pay-links")
def pay_link_form(
    request: Request, _: Operator, session: ReadSession, invoice: str = ""
) -> Response:
    gateways = [(c.id, c.name) for c in paytrace_connections(session)]
    return render(
        request,
        "pay_link_new.html",
        form=LinkForm(invoice_number=invoice[:64]),
        gateways=gateways,
        errors={},
        problem="",
        link=None,
    )


@router.post("/payments/pay-links")
async def pay_link_create(request: Request, principal: Operator, runtime: RuntimeDep) -> Response:
    data = await request.form()
    form = LinkForm(
        invoice_number=str(data.get("invoice_number") or "").strip()[:64],
        expires_in_days=str(data.get("expires_in_days") or "").strip()[:4],
        send_email=bool(data.get("send_email")),
        email=str(data.get("email") or "").strip()[:254],
        connection_id=str(data.get("connection_id") or "").strip()[:18],
    )
    errors: dict[str, str] = {}
    problem, emailed_to, email_problem, link = "", None, None, None
    try:
        if not form.expires_in_days.isdigit():
            raise PayLinkRefused("expires_in_days", "Enter how many days the link works, e.g. 14")
        if form.send_email and form.email:
            checked_address(form.email)
        link = await create_link(
            runtime,
            principal,
            invoice_number=form.invoice_number,
            gateway_connection_id=int(form.connection_id) if form.connection_id.isdigit() else None,
            expires_in_days=int(form.expires_in_days),
            origin=str(request.base_url),
        )
        if form.send_email:
            try:
                emailed_to = await send_link(
                    runtime, principal, link, form.email or link.customer_email
                )
            except PayLinkRefused as refused:
                email_problem = refused.message
    except PayLinkRefused as refused:
        errors[refused.field if refused.field in FIELDS else "invoice_number"] = refused.message
    except (PaymentProblem, UpstreamError) as exc:
        problem = exc.reason if isinstance(exc, PaymentProblem) else exc.message
    gateways = await reading(
        runtime.db, lambda session: [(c.id, c.name) for c in paytrace_connections(session)]
    )
    return render(
        request,
        "pay_link_new.html",
        status_code=422 if errors else 502 if problem else 200,
        form=form,
        gateways=gateways,
        errors=errors,
        problem=problem,
        link=link,
        emailed_to=emailed_to,
        email_problem=email_problem,
    )
