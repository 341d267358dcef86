"""Payments in the portal: the figures (today, posted, pending, exceptions, lag, upstream
health), the newest events, one event with what was posted for it, the exceptions queue
with its actions, polling PayTrace now and importing a dispute report. Viewers read;
operators act."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import quote_plus

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.payments import disputes, views
from ledgerlink.payments.charges import ChargeRefused, charge_invoice
from ledgerlink.payments.gateway_connections import paytrace_connections
from ledgerlink.payments.inbox import EventRefused
from ledgerlink.payments.poller import poll_due
from ledgerlink.payments.problems import REASONS, PaymentProblem
from ledgerlink.payments.resolutions import take_action
from ledgerlink.web.deps import Operator, ReadSession, RuntimeDep, Viewer, WriteSession
from ledgerlink.web.portal.rendering import render, render_error

router = APIRouter()
STATUSES = (
    "received",
    "processing",
    "posted",
    "exception",
    "ignored",
    "confirmed",
    "unverified",
)


@router.get("/payments")
def payments_page(
    request: Request,
    _: Viewer,
    session: ReadSession,
    status: str = "",
    q: str = "",
    notice: str = "",
    problem: str = "",
) -> Response:
    figures = views.dashboard(session)
    events = views.recent_events(
        session, status=status if status in STATUSES else None, limit=100, search=q
    )
    gateways = [(c.id, c.name) for c in paytrace_connections(session)]
    return render(
        request,
        "payments.html",
        figures=figures,
        events=events,
        statuses=STATUSES,
        status=status,
        q=q,
        gateways=gateways,
        notice=notice,
        problem=problem,
    )


@router.get("/payments/events/{event_id}")
def event_page(request: Request, event_id: int, _: Viewer, session: ReadSession) -> Response:
    detail = views.event_detail(session, event_id)
    if detail is None:
        return render_error(request, 404, f"There is no payment event {event_id}")
    return render(request, "payment_event.html", **detail)


@router.get("/payments/exceptions")
def exceptions_page(
    request: Request,
    _: Viewer,
    session: ReadSession,
    status: str = "open",
    reason: str = "",
    notice: str = "",
) -> Response:
    rows = views.exception_rows(
        session,
        status=status if status in ("open", "resolved", "ignored") else None,
        reason=reason if reason in REASONS else None,
    )
    return render(
        request,
        "payment_exceptions.html",
        rows=rows,
        status=status,
        reason=reason,
        reasons=REASONS,
        notice=notice,
    )


@router.post("/payments/exceptions/{exception_id}")
def act_on_exception(
    exception_id: int,
    principal: Operator,
    runtime: RuntimeDep,
    session: WriteSession,
    action: Annotated[str, Form()] = "",
    invoice_number: Annotated[str, Form()] = "",
    customer_number: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    result = take_action(
        session,
        runtime.jobs,
        principal,
        exception_id,
        action,
        invoice_number=invoice_number,
        customer_number=customer_number,
        note=note,
    )
    return RedirectResponse(f"/payments/exceptions?notice={quote_plus(result.message)}", 303)


@router.post("/payments/poll")
async def poll_now(_: Operator, runtime: RuntimeDep) -> Response:
    results = await poll_due(runtime, force=True)
    if not results:
        return RedirectResponse("/payments?problem=Add+a+PayTrace+connection+first", 303)
    errors = [r.error for r in results if r.error]
    if errors:
        return RedirectResponse(f"/payments?problem={quote_plus('; '.join(errors))}", 303)
    new = sum(r.new for r in results)
    read = sum(r.read for r in results)
    message = f"PayTrace polled: {read} transactions read, {new} new"
    return RedirectResponse(f"/payments?notice={quote_plus(message)}", 303)


@router.post("/payments/disputes")
async def import_disputes(request: Request, _: Operator, runtime: RuntimeDep) -> Response:
    form = await request.form()
    upload = form.get("report")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return render_error(request, 422, "Choose the dispute report file (CSV or JSON) first")
    content = await upload.read()
    connection_id = int(str(form.get("connection_id") or "0")) or None
    try:
        result = await run_in_threadpool(
            disputes.import_file, runtime, content, upload.filename, connection_id
        )
    except EventRefused as refused:  # the file's name with why it was refused
        return render_error(request, 422, f"{upload.filename}: {refused.message}")
    message = (
        f"{upload.filename}: {result.rows} rows, {result.new_events} new events, "
        f"{result.repeated} already imported"
    )
    if result.problems:
        lines = "; ".join(f"line {p.line} {p.field}: {p.message}" for p in result.problems)
        return RedirectResponse(
            f"/payments?notice={quote_plus(message)}&problem={quote_plus(lines)}", 303
        )
    return RedirectResponse(f"/payments?notice={quote_plus(message)}", 303)


@router.get("/payments/charge")
def charge_form(request: Request, _: Operator, session: ReadSession, invoice: str = "") -> Response:
    gateways = [(c.id, c.name) for c in paytrace_connections(session)]
    return render(
        request,
        "payment_charge.html",
        invoice=invoice,
        gateways=gateways,
        key=uuid.uuid4().hex,  # one per form: a double submit charges once
        result=None,
    )


@router.post("/payments/charge")
async def charge(request: Request, principal: Operator, runtime: RuntimeDep) -> Response:
    form = await request.form()
    invoice = str(form.get("invoice_number") or "")
    try:
        result = await charge_invoice(
            runtime,
            principal,
            invoice_number=invoice,
            amount=str(form.get("amount") or ""),
            idempotency_key=str(form.get("idempotency_key") or ""),
            gateway_connection_id=int(str(form.get("connection_id") or "0")) or None,
        )
    except ChargeRefused as refused:  # said as the one thing the person needs to know
        return render_error(request, 422, f"The card was not charged: {refused.message}")
    except (PaymentProblem, UpstreamError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "message", str(exc))
        return render_error(request, 502, f"The card was not charged: {reason}")
    return render(request, "payment_charge.html", invoice=invoice, gateways=[], result=result)
