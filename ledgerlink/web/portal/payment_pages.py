"""Payments in the portal: the figures (today, posted, pending, exceptions, lag, upstream
health), the newest events, one event with what was posted for it, the exceptions queue
with its actions, polling PayTrace now and importing a dispute report. Viewers read;
operators act."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Annotated
from urllib.parse import quote_plus

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ledgerlink import overview
from ledgerlink.blocking import reading
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.payments import disputes, views
from ledgerlink.payments.charge_outcomes import ChargeRefused
from ledgerlink.payments.charges import charge_invoice
from ledgerlink.payments.gateway_connections import paytrace_connections
from ledgerlink.payments.inbox import EventRefused
from ledgerlink.payments.level_three import outcome_for
from ledgerlink.payments.poller import poll_due
from ledgerlink.payments.problems import REASONS, PaymentProblem
from ledgerlink.payments.resolutions import ActionRefused, take_action
from ledgerlink.web.deps import Operator, ReadSession, RuntimeDep, Viewer, WriteSession
from ledgerlink.web.portal import page_charts
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
    charts = page_charts.payment_charts(overview.payments_by_day(session))
    return render(
        request,
        "payments.html",
        charts=charts,
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
    labels = views.mapping_labels(session, (p["mapping_version"] for p in detail["postings"]))
    level_three = outcome_for(session, detail["event"].transaction_id)
    return render(
        request, "payment_event.html", mapping_labels=labels, level_three=level_three, **detail
    )


@router.get("/payments/exceptions")
def exceptions_page(
    request: Request,
    _: Viewer,
    session: ReadSession,
    status: str = "open",
    reason: str = "",
    notice: str = "",
) -> Response:
    return _exceptions_page(request, session, status=status, reason=reason, notice=notice)


@dataclass(frozen=True)
class RefusedAction:
    """An action the queue did not take: shown beside the field of the exception it was
    for, with what was typed."""

    id: int
    action: str
    field: str
    message: str
    values: dict[str, str]
    #: the exception is in the list (else the message is shown above it)
    shown: bool = False


def _exceptions_page(
    request: Request,
    session: Session,
    *,
    status: str = "open",
    reason: str = "",
    notice: str = "",
    refused: RefusedAction | None = None,
    status_code: int = 200,
) -> Response:
    rows = views.exception_rows(
        session,
        status=status if status in ("open", "resolved", "ignored") else None,
        reason=reason if reason in REASONS else None,
    )
    if refused is not None:
        listed = any(row.id == refused.id and row.status == "open" for row in rows)
        refused = replace(refused, shown=listed)
    return render(
        request,
        "payment_exceptions.html",
        status_code=status_code,
        rows=rows,
        status=status,
        reason=reason,
        reasons=REASONS,
        notice=notice,
        refused=refused,
    )


@router.post("/payments/exceptions/{exception_id}")
def act_on_exception(
    request: Request,
    exception_id: int,
    principal: Operator,
    runtime: RuntimeDep,
    session: WriteSession,
    action: Annotated[str, Form()] = "",
    invoice_number: Annotated[str, Form()] = "",
    customer_number: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    try:
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
    except ActionRefused as refused:
        if refused.missing:
            raise
        session.rollback()  # nothing of the refused action is kept
        values = {"invoice_number": invoice_number, "customer_number": customer_number}
        shown = RefusedAction(
            exception_id, action, refused.field, refused.message, {**values, "note": note}
        )
        return _exceptions_page(request, session, refused=shown, status_code=422)
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
    return _charge_page(request, _gateways(session), ChargeForm(invoice_number=invoice))


@dataclass(frozen=True)
class ChargeForm:
    """What the person typed, shown again with the error beside its field when the charge
    is refused (a refused charge sent nothing, so the same key may be sent again)."""

    invoice_number: str = ""
    amount: str = ""
    connection_id: int | None = None
    #: one per form: a double submit charges once
    idempotency_key: str = field(default_factory=lambda: uuid.uuid4().hex)


def _gateways(session: Session) -> list[tuple[int, str]]:
    return [(c.id, c.name) for c in paytrace_connections(session)]


def _charge_page(
    request: Request,
    gateways: list[tuple[int, str]],
    form: ChargeForm,
    *,
    errors: dict[str, str] | None = None,
    problem: str = "",
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "payment_charge.html",
        status_code=status_code,
        form=form,
        gateways=gateways,
        errors=errors or {},
        problem=problem,
        result=None,
    )


@router.post("/payments/charge")
async def charge(request: Request, principal: Operator, runtime: RuntimeDep) -> Response:
    data = await request.form()
    connection = str(data.get("connection_id") or "").strip()
    form = ChargeForm(
        invoice_number=str(data.get("invoice_number") or "").strip(),
        amount=str(data.get("amount") or "").strip(),
        connection_id=int(connection) if connection.isdigit() and len(connection) < 18 else None,
        idempotency_key=str(data.get("idempotency_key") or "") or uuid.uuid4().hex,
    )
    errors: dict[str, str] = {}
    problem = ""
    try:
        result = await charge_invoice(
            runtime,
            principal,
            invoice_number=form.invoice_number,
            amount=form.amount,
            idempotency_key=form.idempotency_key,
            gateway_connection_id=form.connection_id,
        )
    except ChargeRefused as refused:  # beside the field it is about, with the input kept
        if refused.field in _CHARGE_FIELDS:
            errors[refused.field] = refused.message
        else:  # the form's own key (a tampered page): a fresh form key
            problem = f"The card was not charged: {refused.message}"
            form = replace(form, idempotency_key=uuid.uuid4().hex)
        status = 422
    except (PaymentProblem, UpstreamError) as exc:  # not the input: the set-up or an upstream
        reason = exc.reason if isinstance(exc, PaymentProblem) else exc.message
        fix = exc.fix if isinstance(exc, PaymentProblem) else ""
        problem = f"The card was not charged: {reason}" + (f" {fix}" if fix else "")
        status = 502
    else:
        return render(
            request, "payment_charge.html", form=form, gateways=[], result=result, errors={}
        )
    gateways = await reading(runtime.db, _gateways)
    return _charge_page(request, gateways, form, errors=errors, problem=problem, status_code=status)


#: The charge form's fields a refusal can be shown beside.
_CHARGE_FIELDS = ("invoice_number", "amount", "connection_id")
