"""Members → *Ask for a card on file*: finance makes a card-capture link for a member whose
ledger customer is linked (after *Create Account* or *Link existing*), copies it or e-mails
it to the customer (operator role; audited in the use case). The customer's card becomes
their PayTrace profile, which PayTrace cannot create without one."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledgerlink.blocking import reading
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.paylinks.capture import create_capture_link
from ledgerlink.paylinks.capture_mail import send_capture_link
from ledgerlink.paylinks.links import DEFAULT_DAYS, PayLinkRefused
from ledgerlink.paylinks.mail import checked_address
from ledgerlink.payments.gateway_connections import paytrace_connections
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.web.deps import Operator, ReadSession, RuntimeDep
from ledgerlink.web.portal.rendering import render

router = APIRouter()
FIELDS = ("member", "expires_in_days", "email", "connection_id")


@dataclass(frozen=True)
class CaptureLinkForm:
    expires_in_days: str = str(DEFAULT_DAYS)
    send_email: bool = False
    email: str = ""
    connection_id: str = ""


@router.get("/members/{number}/card-capture-link")
def capture_link_form(request: Request, number: str, _: Operator, session: ReadSession) -> Response:
    return render(
        request,
        "capture_link_new.html",
        number=number[:40],
        form=CaptureLinkForm(),
        gateways=[(c.id, c.name) for c in paytrace_connections(session)],
        errors={},
        problem="",
        link=None,
    )


@router.post("/members/{number}/card-capture-link")
async def capture_link_create(
    request: Request, number: str, principal: Operator, runtime: RuntimeDep
) -> Response:
    data = await request.form()
    form = CaptureLinkForm(
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
        link = await create_capture_link(
            runtime,
            principal,
            member_number=number[:40],
            gateway_connection_id=int(form.connection_id) if form.connection_id.isdigit() else None,
            expires_in_days=int(form.expires_in_days),
            origin=str(request.base_url),
        )
        if form.send_email:
            try:
                emailed_to = await send_capture_link(
                    runtime, principal, link, form.email or link.customer_email
                )
            except PayLinkRefused as refused:
                email_problem = refused.message
    except PayLinkRefused as refused:
        errors[refused.field if refused.field in FIELDS else "member"] = refused.message
    except (PaymentProblem, UpstreamError) as exc:
        problem = exc.reason if isinstance(exc, PaymentProblem) else exc.message
    gateways = await reading(
        runtime.db, lambda session: [(c.id, c.name) for c in paytrace_connections(session)]
    )
    return render(
        request,
        "capture_link_new.html",
        status_code=422 if errors else 502 if problem else 200,
        number=number[:40],
        form=form,
        gateways=gateways,
        errors=errors,
        problem=problem,
        link=link,
        emailed_to=emailed_to,
        email_problem=email_problem,
    )
