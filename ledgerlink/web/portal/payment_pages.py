"""Payments in the portal: the figures (today, posted, pending, exceptions, lag, upstream
health), the newest events, one event with what was posted for it, the exceptions queue
with its actions, polling PayTrace now and importing a dispute report. Viewers read;
operators act."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import quote_plus

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.payments import disputes, views
from ledgerlink.payments.inbox import EventRefused
from ledgerlink.payments.problems import REASONS
from ledgerlink.payments.resolutions import ActionRefused, take_action
from ledgerlink.store.models import Connection
from ledgerlink.web.portal.rendering import render, render_error
from ledgerlink.web.security import operator, viewer

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


def _paytrace_connections(session: Session) -> list[Connection]:
    return list(
        session.scalars(
            select(Connection).where(Connection.kind == "paytrace").order_by(Connection.name)
        )
    )


@router.get("/payments")
def payments_page(
    request: Request,
    _: Annotated[Principal, Depends(viewer)],
    status: str = "",
    q: str = "",
    notice: str = "",
    problem: str = "",
) -> Response:
    with request.app.state.db.read() as session:
        figures = views.dashboard(session)
        events = views.recent_events(
            session, status=status if status in STATUSES else None, limit=100, search=q
        )
        gateways = [(c.id, c.name) for c in _paytrace_connections(session)]
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
def event_page(
    request: Request, event_id: int, _: Annotated[Principal, Depends(viewer)]
) -> Response:
    with request.app.state.db.read() as session:
        detail = views.event_detail(session, event_id)
    if detail is None:
        return render_error(request, 404, f"There is no payment event {event_id}")
    return render(request, "payment_event.html", **detail)


@router.get("/payments/exceptions")
def exceptions_page(
    request: Request,
    _: Annotated[Principal, Depends(viewer)],
    status: str = "open",
    reason: str = "",
    notice: str = "",
) -> Response:
    with request.app.state.db.read() as session:
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
async def act_on_exception(
    request: Request, exception_id: int, principal: Annotated[Principal, Depends(operator)]
) -> Response:
    form = await request.form()
    runtime = request.app.state.runtime
    try:
        with runtime.db.transaction() as session:
            result = take_action(
                session,
                runtime.jobs,
                principal,
                exception_id,
                str(form.get("action") or ""),
                invoice_number=str(form.get("invoice_number") or ""),
                customer_number=str(form.get("customer_number") or ""),
                note=str(form.get("note") or ""),
            )
    except ActionRefused as refused:
        return render_error(request, 422, f"Nothing was done: {refused.message}")
    return RedirectResponse(f"/payments/exceptions?notice={quote_plus(result.message)}", 303)


@router.post("/payments/poll")
async def poll_now(request: Request, _: Annotated[Principal, Depends(operator)]) -> Response:
    from ledgerlink.payments.poller import poll_due

    results = await poll_due(request.app.state.runtime, force=True)
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
async def import_disputes(request: Request, _: Annotated[Principal, Depends(operator)]) -> Response:
    form = await request.form()
    upload = form.get("report")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return render_error(request, 422, "Choose the dispute report file (CSV or JSON) first")
    content = await upload.read()
    connection_id = int(str(form.get("connection_id") or "0")) or None
    try:
        result = disputes.import_file(
            request.app.state.runtime, content, upload.filename, connection_id
        )
    except EventRefused as refused:
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
def charge_form(
    request: Request, _: Annotated[Principal, Depends(operator)], invoice: str = ""
) -> Response:
    with request.app.state.db.read() as session:
        gateways = [(c.id, c.name) for c in _paytrace_connections(session)]
    return render(
        request,
        "payment_charge.html",
        invoice=invoice,
        gateways=gateways,
        key=uuid.uuid4().hex,  # one per form: a double submit charges once
        result=None,
    )


@router.post("/payments/charge")
async def charge(request: Request, principal: Annotated[Principal, Depends(operator)]) -> Response:
    from ledgerlink.connectors.errors import UpstreamError
    from ledgerlink.payments.charges import ChargeRefused, charge_invoice
    from ledgerlink.payments.problems import PaymentProblem

    form = await request.form()
    invoice = str(form.get("invoice_number") or "")
    try:
        result = await charge_invoice(
            request.app.state.runtime,
            principal,
            invoice_number=invoice,
            amount=str(form.get("amount") or ""),
            idempotency_key=str(form.get("idempotency_key") or ""),
            gateway_connection_id=int(str(form.get("connection_id") or "0")) or None,
        )
    except ChargeRefused as refused:
        return render_error(request, 422, f"The card was not charged: {refused.message}")
    except (PaymentProblem, UpstreamError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "message", str(exc))
        return render_error(request, 502, f"The card was not charged: {reason}")
    return render(request, "payment_charge.html", invoice=invoice, gateways=[], result=result)
