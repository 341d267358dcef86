"""Payments over the API: the figures, events and what was posted for them, the
exceptions queue and its actions, polling now, dispute report import, and charging a
stored card for an invoice (with an ``Idempotency-Key`` header)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, UploadFile
from pydantic import BaseModel, Field

from ledgerlink.identity.principal import Principal
from ledgerlink.payments import disputes, views
from ledgerlink.payments.inbox import EventRefused
from ledgerlink.payments.resolutions import ActionRefused, take_action
from ledgerlink.store.models import Connection
from ledgerlink.web.api.inputs import INT64_MAX, CleanText, PathId, QueryId
from ledgerlink.web.problems import Problem, field_problem, problem_responses
from ledgerlink.web.security import operator, viewer

router = APIRouter(prefix="/payments", tags=["payments"])


class ActionIn(BaseModel):
    action: Literal["retry", "apply_to_invoice", "on_account", "ignore"]
    invoice_number: CleanText = Field(
        default="", max_length=64, description="apply_to_invoice: the invoice."
    )
    customer_number: CleanText = Field(
        default="", max_length=64, description="on_account: another customer."
    )
    note: CleanText = Field(default="", max_length=1000, description="Why (required to ignore).")


class ChargeIn(BaseModel):
    invoice_number: CleanText = Field(min_length=1, max_length=64)
    amount: CleanText = Field(
        default="", max_length=32, description="Decimal text; empty: the open balance."
    )
    connection_id: int | None = Field(
        default=None, strict=True, ge=1, le=INT64_MAX, description="PayTrace connection."
    )


@router.get("/dashboard", summary="Payments today, posted, pending, exceptions, lag, health")
def dashboard(request: Request, _: Annotated[Principal, Depends(viewer)]) -> dict[str, Any]:
    with request.app.state.db.read() as session:
        return asdict(views.dashboard(session))


@router.get("/events", summary="The newest payment events")
def list_events(
    request: Request,
    _: Annotated[Principal, Depends(viewer)],
    status: Annotated[CleanText | None, Query(max_length=32)] = None,
    transaction_id: Annotated[CleanText, Query(max_length=64)] = "",
    limit: int = 100,
) -> list[dict[str, Any]]:
    with request.app.state.db.read() as session:
        rows = views.recent_events(
            session, status=status, limit=min(max(limit, 1), 1000), search=transaction_id
        )
    return [asdict(row) for row in rows]


@router.get("/events/{event_id}", summary="One event, what was posted for it, its exception")
def get_event(
    request: Request, event_id: PathId, _: Annotated[Principal, Depends(viewer)]
) -> dict[str, Any]:
    with request.app.state.db.read() as session:
        detail = views.event_detail(session, event_id)
    if detail is None:
        raise Problem(404, "Not found", f"there is no payment event {event_id}")
    return {
        "event": asdict(detail["event"]),
        "postings": detail["postings"],
        "exception": asdict(detail["exception"]) if detail["exception"] else None,
    }


@router.get("/exceptions", summary="The exceptions queue")
def list_exceptions(
    request: Request,
    _: Annotated[Principal, Depends(viewer)],
    status: Annotated[CleanText | None, Query(max_length=32)] = "open",
    reason: Annotated[CleanText | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    with request.app.state.db.read() as session:
        return [asdict(row) for row in views.exception_rows(session, status=status, reason=reason)]


@router.post("/exceptions/{exception_id}/actions", summary="Retry, apply elsewhere, ...")
def act(
    request: Request,
    exception_id: PathId,
    body: ActionIn,
    principal: Annotated[Principal, Depends(operator)],
) -> dict[str, Any]:
    runtime = request.app.state.runtime
    try:
        with runtime.db.transaction() as session:
            result = take_action(
                session,
                runtime.jobs,
                principal,
                exception_id,
                body.action,
                invoice_number=body.invoice_number,
                customer_number=body.customer_number,
                note=body.note,
            )
    except ActionRefused as refused:
        status = 404 if refused.missing else 422
        raise field_problem(refused.field, refused.message, status=status) from None
    return asdict(result)


@router.post("/poll", summary="Poll PayTrace's exports and settlement batches now")
async def poll(
    request: Request, _: Annotated[Principal, Depends(operator)]
) -> list[dict[str, Any]]:
    from ledgerlink.payments.poller import poll_due

    return [asdict(r) for r in await poll_due(request.app.state.runtime, force=True)]


#: A dispute report is a few thousand rows; anything far larger is not one.
MAX_REPORT_BYTES = 20 * 1024 * 1024


@router.post("/disputes", summary="Import a PayTrace dispute report (CSV or JSON)")
async def import_disputes(
    request: Request,
    report: UploadFile,
    _: Annotated[Principal, Depends(operator)],
    connection_id: QueryId = None,
) -> dict[str, Any]:
    content = await report.read(MAX_REPORT_BYTES + 1)
    if len(content) > MAX_REPORT_BYTES:
        raise field_problem("report", "is larger than 20 MB; split it into parts", status=413)
    if connection_id is not None:
        with request.app.state.db.read() as session:
            connection = session.get(Connection, connection_id)
            if connection is None or connection.kind != "paytrace":
                raise field_problem(
                    "connection_id", f"there is no PayTrace connection {connection_id}"
                )
    try:
        result = disputes.import_file(
            request.app.state.runtime, content, report.filename or "", connection_id
        )
    except EventRefused as refused:
        raise field_problem(refused.field, refused.message) from None
    return disputes.as_dict(result)


@router.post(
    "/charges",
    summary="Charge the stored card of an invoice's customer, once",
    responses=problem_responses(428, 502),
)
async def charge(
    request: Request,
    body: ChargeIn,
    principal: Annotated[Principal, Depends(operator)],
    idempotency_key: Annotated[CleanText, Header(alias="Idempotency-Key", max_length=200)] = "",
) -> dict[str, Any]:
    from ledgerlink.connectors.errors import UpstreamError
    from ledgerlink.payments.charges import ChargeRefused, charge_invoice
    from ledgerlink.payments.problems import PaymentProblem

    if not idempotency_key:
        raise Problem(
            428,
            "Idempotency-Key required",
            "Send an Idempotency-Key header (8 to 80 characters) so a retry never charges twice",
        )
    try:
        result = await charge_invoice(
            request.app.state.runtime,
            principal,
            invoice_number=body.invoice_number,
            amount=body.amount,
            idempotency_key=idempotency_key,
            gateway_connection_id=body.connection_id,
        )
    except ChargeRefused as refused:
        raise field_problem(refused.field, refused.message) from None
    except PaymentProblem as problem:
        raise Problem(409, "Not charged", f"{problem.reason}. {problem.fix}") from None
    except UpstreamError as exc:
        raise Problem(502, "Not charged", exc.message) from None
    return asdict(result)
