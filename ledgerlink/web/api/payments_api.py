"""Payments over the API: the figures, events and what was posted for them, the
exceptions queue and its actions, polling now, dispute report import, and charging a
stored card for an invoice (with an ``Idempotency-Key`` header)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, UploadFile
from pydantic import BaseModel, Field

from ledgerlink.payments import disputes, pair_health, views
from ledgerlink.payments.charges import charge_invoice
from ledgerlink.payments.gateway_connections import is_paytrace_connection
from ledgerlink.payments.poller import poll_due
from ledgerlink.payments.resolutions import take_action
from ledgerlink.web.api.inputs import INT64_MAX, CleanText, PathId, QueryId
from ledgerlink.web.api.outputs import ResponseModel
from ledgerlink.web.deps import Operator, ReadSession, RuntimeDep, Viewer, WriteSession
from ledgerlink.web.problems import Problem, field_problem, problem_responses

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


# ---- responses: what payments/views.py and the use cases return, field for field -------


class HealthOut(ResponseModel):
    name: str
    kind: str
    ok: bool
    detail: str


class DashboardOut(ResponseModel):
    payments_today: int
    amount_today: str
    posted_today: int
    pending: int
    exceptions_open: int
    critical_open: int
    lag_p50_seconds: float | None = Field(description="Received → posted, median (24 h).")
    lag_p99_seconds: float | None
    health: list[HealthOut]
    unverified_today: int = Field(
        description="Silent posts in 24 h that PayTrace did not bear out (nothing posted)."
    )


class PairHealthOut(ResponseModel):
    gateway_id: int = Field(description="The PayTrace connection (merchant account).")
    gateway: str
    ledger_id: int | None = Field(description="The ledger its payments post to (None: unset).")
    ledger: str
    posted_last_hour: int
    waiting: int = Field(description="Payments received and not yet posted or resolved.")
    oldest_waiting_seconds: float | None
    last_error: str = Field(description="The latest problem in words; empty when none.")
    status: Literal["ok", "behind", "failing"]
    status_detail: str = Field(description="The status in words, with what to do.")


class EventOut(ResponseModel):
    id: int
    transaction_id: str
    kind: str
    source: str
    amount: str
    invoice_number: str
    customer_id: str
    status: str
    message: str | None
    deliveries: int
    attempts: int
    received_at: datetime
    processed_at: datetime | None


class ExceptionOut(ResponseModel):
    id: int
    event_id: int
    transaction_id: str
    kind: str
    reason_code: str
    reason_label: str
    reason: str
    fix: str
    status: str
    critical: bool
    invoice_number: str
    amount: str
    customer_id: str
    opened_at: datetime
    resolved_by: str | None
    resolution: str | None
    actions: list[str] = Field(description="What can be done about it (see the actions route).")


class PostingOut(ResponseModel):
    action: str
    system: str
    ledger_id: str
    idempotency_key: str
    invoice_number: str
    amount: str
    applied: str
    mapping_version: str
    posted_at: datetime
    reversed_at: datetime | None


class EventDetailOut(ResponseModel):
    event: EventOut
    postings: list[PostingOut]
    exception: ExceptionOut | None


class ActionOut(ResponseModel):
    exception_id: int
    action: str
    message: str


class PollOut(ResponseModel):
    connection_id: int
    read: int
    new: int
    batches: int
    error: str | None


class DisputeProblemOut(ResponseModel):
    line: int
    field: str
    message: str


class DisputeImportOut(ResponseModel):
    rows: int
    new_events: int
    repeated: int
    problems: list[DisputeProblemOut]


class ChargeOut(ResponseModel):
    id: int
    status: str = Field(description="approved, declined, failed, unknown or sending.")
    transaction_id: str | None
    amount: str
    invoice_number: str
    message: str
    repeated: bool = Field(description="This Idempotency-Key charged before: its result.")
    level_three: str = Field(
        default="",
        description="What became of the sale's Level 3 data (sent, or why not), in words.",
    )


@router.get("/dashboard", summary="Payments today, posted, pending, exceptions, lag, health")
def dashboard(_: Viewer, session: ReadSession) -> DashboardOut:
    return DashboardOut.model_validate(asdict(views.dashboard(session)))


@router.get("/pairs", summary="Each integration pair (PayTrace account → ledger) and its health")
def pairs(_: Viewer, session: ReadSession) -> list[PairHealthOut]:
    return [PairHealthOut.model_validate(asdict(p)) for p in pair_health.pair_health(session)]


@router.get("/events", summary="The newest payment events")
def list_events(
    _: Viewer,
    session: ReadSession,
    status: Annotated[CleanText | None, Query(max_length=32)] = None,
    transaction_id: Annotated[CleanText, Query(max_length=64)] = "",
    limit: int = 100,
) -> list[EventOut]:
    rows = views.recent_events(
        session, status=status, limit=min(max(limit, 1), 1000), search=transaction_id
    )
    return [EventOut.model_validate(asdict(row)) for row in rows]


@router.get("/events/{event_id}", summary="One event, what was posted for it, its exception")
def get_event(event_id: PathId, _: Viewer, session: ReadSession) -> EventDetailOut:
    detail = views.event_detail(session, event_id)
    if detail is None:
        raise Problem(404, "Not found", f"there is no payment event {event_id}")
    return EventDetailOut.model_validate(
        {
            "event": asdict(detail["event"]),
            "postings": detail["postings"],
            "exception": asdict(detail["exception"]) if detail["exception"] else None,
        }
    )


@router.get("/exceptions", summary="The exceptions queue")
def list_exceptions(
    _: Viewer,
    session: ReadSession,
    status: Annotated[CleanText | None, Query(max_length=32)] = "open",
    reason: Annotated[CleanText | None, Query(max_length=64)] = None,
) -> list[ExceptionOut]:
    rows = views.exception_rows(session, status=status, reason=reason)
    return [ExceptionOut.model_validate(asdict(row)) for row in rows]


@router.post("/exceptions/{exception_id}/actions", summary="Retry, apply elsewhere, ...")
def act(
    exception_id: PathId,
    body: ActionIn,
    principal: Operator,
    runtime: RuntimeDep,
    session: WriteSession,
) -> ActionOut:
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
    return ActionOut.model_validate(asdict(result))


@router.post("/poll", summary="Poll PayTrace's exports and settlement batches now")
async def poll(_: Operator, runtime: RuntimeDep) -> list[PollOut]:
    return [PollOut.model_validate(asdict(r)) for r in await poll_due(runtime, force=True)]


#: A dispute report is a few thousand rows; anything far larger is not one.
MAX_REPORT_BYTES = 20 * 1024 * 1024


@router.post("/disputes", summary="Import a PayTrace dispute report (CSV or JSON)")
def import_disputes(
    report: UploadFile,
    _: Operator,
    runtime: RuntimeDep,
    connection_id: QueryId = None,
) -> DisputeImportOut:
    content = report.file.read(MAX_REPORT_BYTES + 1)
    if len(content) > MAX_REPORT_BYTES:
        raise field_problem("report", "is larger than 20 MB; split it into parts", status=413)
    if connection_id is not None:
        with runtime.db.read() as session:
            known = is_paytrace_connection(session, connection_id)
        if not known:
            raise field_problem("connection_id", f"there is no PayTrace connection {connection_id}")
    result = disputes.import_file(runtime, content, report.filename or "", connection_id)
    return DisputeImportOut.model_validate(disputes.as_dict(result))


@router.post(
    "/charges",
    summary="Charge the stored card of an invoice's customer, once",
    responses=problem_responses(428, 502),
)
async def charge(
    body: ChargeIn,
    principal: Operator,
    runtime: RuntimeDep,
    idempotency_key: Annotated[CleanText, Header(alias="Idempotency-Key", max_length=200)] = "",
) -> ChargeOut:
    if not idempotency_key:
        raise Problem(
            428,
            "Idempotency-Key required",
            "Send an Idempotency-Key header (8 to 80 characters) so a retry never charges twice",
        )
    result = await charge_invoice(
        runtime,
        principal,
        invoice_number=body.invoice_number,
        amount=body.amount,
        idempotency_key=idempotency_key,
        gateway_connection_id=body.connection_id,
    )
    return ChargeOut.model_validate(asdict(result))
