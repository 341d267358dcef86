"""Reconciliation over the API: scopes and their summary, runs, breaks (list, export,
detail, actions), the batch drill-down, statement import, and periods.

Viewers read; operators run, import and resolve; admins close and reopen periods. Routes
are plain ``def`` (FastAPI runs them in its thread pool) and hold no SQL: queries live in
``recon/views.py`` and changes in the use cases they call.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.recon import exports, resolutions, views
from ledgerlink.recon.imports import import_statement
from ledgerlink.recon.periods import close_period, reopen_period
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.recon.runs import default_matcher, run_scope
from ledgerlink.recon.scopes import ensure_default_scopes, get_scope, settings_of, update_settings
from ledgerlink.recon.statements.csv_columns import CsvMapping
from ledgerlink.web.api import recon_rules_api
from ledgerlink.web.api.inputs import CleanText, PathId
from ledgerlink.web.api.outputs import ResponseModel
from ledgerlink.web.deps import Admin, Operator, ReadSession, RuntimeDep, Viewer, WriteSession
from ledgerlink.web.problems import Problem, field_problem, problem_responses

router = APIRouter(prefix="/recon", tags=["reconciliation"])
router.include_router(recon_rules_api.router)  # /recon/rules: the matching rules

BreakId = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_:.\-]+$")]
Period = Annotated[str, Path(pattern=r"^\d{4}-\d{2}$", description="A month, YYYY-MM.")]
PeriodQuery = Annotated[
    CleanText | None, Query(pattern=r"^\d{4}-\d{2}$", description="A month, YYYY-MM.")
]
#: A year of daily deposits is far smaller.
MAX_STATEMENT_BYTES = 20 * 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _refused(refused: ReconRefused) -> Problem:
    if refused.missing:
        return Problem(404, "Not found", refused.message)
    message = refused.message if refused.line is None else f"line {refused.line}: {refused.message}"
    return field_problem(refused.field, message)


class RunIn(BaseModel):
    as_of: date | None = Field(
        default=None, description="Count ages to this day; today if omitted."
    )
    full: bool = Field(default=False, strict=True, description="Re-read every side from the start.")
    read: bool = Field(default=True, strict=True, description="Read the sides before matching.")


class BreakActionIn(BaseModel):
    action: Literal["post_receipt", "reverse_duplicate", "explain", "assign"]
    reason: CleanText = Field(default="", max_length=2000, description="Why (required to explain).")
    user: CleanText = Field(default="", max_length=254, description="assign: the user's e-mail.")
    receipt_id: CleanText = Field(
        default="", max_length=64, description="reverse_duplicate: the receipt to reverse."
    )
    invoice_number: CleanText = Field(
        default="", max_length=64, description="post_receipt: apply to this invoice."
    )
    on_account: bool = Field(
        default=False, strict=True, description="post_receipt: on the customer's account."
    )


# ---- responses: built from what recon/views.py and the use cases return, field for field


class SideStateOut(ResponseModel):
    rows: int
    cursor: str | None
    read_at: str | None
    error: str | None


class ScopeOut(ResponseModel):
    id: int
    name: str
    gateway_connection_id: int
    ledger_connection_id: int
    currency: str
    open_breaks: int
    last_run_at: str = Field(description="ISO 8601; empty before the first run.")
    sides: dict[str, SideStateOut] = Field(description="Each side's read state, by side.")


class RunOut(ResponseModel):
    id: int
    trigger: str
    requested_by: str
    spec_version: str
    as_of: str
    status: str
    counts: dict[str, int]
    totals: dict[str, dict[str, int | str]] = Field(
        description="Per side: currency, total_minor, matched_minor, unmatched_minor."
    )
    started_at: str
    duration_ms: int | None
    error: str | None


class TypeTotalOut(ResponseModel):
    type: str
    label: str
    count: int
    amount: str
    amount_minor: int


class SummaryOut(ResponseModel):
    scope_id: int
    scope_name: str
    currency: str
    period: str
    period_status: str
    signed_off_by: str | None
    run: RunOut | None
    matched_count: int
    matched_amount: str
    matched_amount_minor: int
    open_breaks: int
    open_amount: str
    breaks_by_type: list[TypeTotalOut]
    in_transit: list[tuple[str, int, str]] = Field(
        description="Deposits in transit: (batch, amount in minor units, amount as text)."
    )
    resolved: int
    explained: int


class RunOutcomeOut(ResponseModel):
    run_id: int
    scope_id: int
    status: str
    counts: dict[str, int]
    duration_ms: int
    error: str | None
    incremental: bool = Field(description="Only the rows stored since the last run matched.")
    full_because: str | None = Field(
        default=None, description="Why every stored row was matched again, when it was."
    )
    message: str


class BreakOut(ResponseModel):
    id: int
    break_id: str
    type: str
    label: str
    fix: str
    side: str
    ids: list[str]
    other_side: str
    other_ids: list[str]
    amount: str
    amount_minor: int
    expected: str
    actual: str
    currency: str
    age_days: int
    occurred_on: str
    detail: str
    status: str
    present: bool
    assigned_to: str | None
    resolution: str | None
    resolved_by: str | None
    reason: str | None


class BreakEventOut(ResponseModel):
    at: str
    actor: str
    action: str
    note: str


class TransactionOut(ResponseModel):
    txn_id: str
    kind: str
    status: str
    amount: str
    amount_minor: int
    created_on: str
    batch_number: str | None
    card_brand: str
    invoice_number: str
    original_txn_id: str | None


class ReceiptOut(ResponseModel):
    receipt_id: str
    kind: str
    amount: str
    amount_minor: int
    posted_on: str
    idempotency_key: str
    txn_id: str | None
    reversed: bool
    customer_id: str
    reference: str


class BatchOut(ResponseModel):
    batch_number: str
    settled_on: str
    gross: str
    fees: str
    chargebacks_withheld: str
    net: str
    net_minor: int
    transaction_count: int


class DepositOut(ResponseModel):
    line_id: str
    statement_id: int
    statement: str
    line_no: int
    booked_on: str
    amount: str
    amount_minor: int
    reference: str
    description: str
    bank_ref: str


class BreakDetailOut(ResponseModel):
    row: BreakOut
    history: list[BreakEventOut]
    transactions: list[TransactionOut]
    receipts: list[ReceiptOut]
    batches: list[BatchOut]
    deposits: list[DepositOut]


class BatchTransactionOut(TransactionOut):
    receipts: list[ReceiptOut] = Field(description="The receipts the ledger holds for it.")


class BatchDrillOut(ResponseModel):
    batch: BatchOut
    transactions: list[BatchTransactionOut]
    deposits: list[DepositOut]
    breaks: list[BreakOut]


class ResolutionOut(ResponseModel):
    break_id: str
    action: str
    message: str


class StatementOut(ResponseModel):
    id: int
    format: str
    filename: str
    account: str
    period_start: str
    period_end: str
    lines: int
    imported_by: str
    imported_at: str


class ImportOut(ResponseModel):
    statement_id: int
    format: str
    lines: int
    duplicate: bool = Field(description="Imported before: nothing was added.")
    period_start: str
    period_end: str
    message: str


class PeriodOut(ResponseModel):
    period: str
    status: str
    signed_off_by: str | None
    closed_at: str | None
    reopened_by: str | None
    reopen_reason: str | None


class ClosedOut(ResponseModel):
    period: str
    status: str
    signed_off_by: str | None


class ReopenedOut(ResponseModel):
    period: str
    status: str
    reopen_reason: str | None


class BrandFeeOut(ResponseModel):
    percent_bp: int = Field(description="Basis points of the sale (180 is 1.80%).")
    fixed_minor: int = Field(description="A fixed fee per sale, in minor units.")


class ScopeSettingsOut(ResponseModel):
    scope_id: int
    currency: str
    fee_schedule: dict[str, BrandFeeOut] = Field(description="Expected card fees by brand.")
    alert: dict[str, int | None] = Field(
        description="unexplained_breaks and unexplained_minor; null: that limit is off."
    )


class CloseIn(BaseModel):
    note: CleanText = Field(default="", max_length=2000)


class ReopenIn(BaseModel):
    reason: CleanText = Field(min_length=1, max_length=2000)


@router.get("/scopes", summary="Reconciliation scopes (a PayTrace + ledger pair each)")
def list_scopes(session: WriteSession, principal: Viewer) -> list[ScopeOut]:
    ensure_default_scopes(session, actor=principal.actor)
    return [ScopeOut.model_validate(asdict(row)) for row in views.scopes(session)]


@router.get("/scopes/{scope_id}/summary", summary="Matched, breaks by type, deposits in transit")
def get_summary(
    session: ReadSession, _: Viewer, scope_id: PathId, period: PeriodQuery = None
) -> SummaryOut:
    try:
        return SummaryOut.model_validate(
            asdict(views.summary(session, get_scope(session, scope_id), period))
        )
    except ReconRefused as refused:
        raise _refused(refused) from None


@router.post(
    "/scopes/{scope_id}/runs",
    summary="Run a reconciliation now (reads the sides, matches, keeps the breaks)",
    responses=problem_responses(502),
)
def start_run(
    runtime: RuntimeDep, principal: Operator, scope_id: PathId, body: RunIn | None = None
) -> RunOutcomeOut:
    body = body or RunIn()
    try:
        outcome = asyncio.run(
            run_scope(
                runtime,
                scope_id,
                principal,
                trigger="api",
                matcher=default_matcher(runtime.db),
                as_of=body.as_of,
                read=body.read,
                full=body.full,
            )
        )
    except ReconRefused as refused:
        raise _refused(refused) from None
    except UpstreamError as exc:
        raise Problem(502, "Not run", exc.message) from None
    return RunOutcomeOut.model_validate({**asdict(outcome), "message": outcome.message})


@router.get("/scopes/{scope_id}/runs", summary="The latest runs")
def list_runs(session: ReadSession, _: Viewer, scope_id: PathId) -> list[RunOut]:
    return [RunOut.model_validate(asdict(row)) for row in views.runs(session, scope_id)]


def _filters(
    type_: str | None, status: str, period: str | None, assigned_to: str | None, q: str | None
) -> views.BreakFilter:
    return views.BreakFilter(
        type=type_, status=status, period=period, assigned_to=assigned_to, text=q, limit=10_000
    )


StatusQuery = Annotated[Literal["open", "resolved", "explained", "all"], Query()]
TypeQuery = Annotated[CleanText | None, Query(alias="type", max_length=32)]
AssigneeQuery = Annotated[CleanText | None, Query(max_length=254)]
TextQuery = Annotated[CleanText | None, Query(max_length=200)]


@router.get("/scopes/{scope_id}/breaks", summary="Breaks, filtered")
def list_breaks(
    session: ReadSession,
    _: Viewer,
    scope_id: PathId,
    type_: TypeQuery = None,
    status: StatusQuery = "open",
    period: PeriodQuery = None,
    assigned_to: AssigneeQuery = None,
    q: TextQuery = None,
) -> list[BreakOut]:
    try:
        rows = views.break_rows(session, scope_id, _filters(type_, status, period, assigned_to, q))
    except ReconRefused as refused:
        raise _refused(refused) from None
    return [BreakOut.model_validate(asdict(row)) for row in rows]


@router.get(
    "/scopes/{scope_id}/breaks/export",
    summary="Breaks, filtered, as CSV or XLSX",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, XLSX: {}}}},
)
def export_breaks(
    session: ReadSession,
    _: Viewer,
    scope_id: PathId,
    format: Annotated[Literal["csv", "xlsx"], Query()] = "csv",
    type_: TypeQuery = None,
    status: StatusQuery = "open",
    period: PeriodQuery = None,
    assigned_to: AssigneeQuery = None,
    q: TextQuery = None,
) -> Response:
    try:
        rows = views.break_rows(session, scope_id, _filters(type_, status, period, assigned_to, q))
    except ReconRefused as refused:
        raise _refused(refused) from None
    name = f"recon-{scope_id}-breaks{'-' + period if period else ''}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "xlsx":
        return Response(exports.breaks_xlsx(rows), media_type=XLSX, headers=headers)
    return Response(exports.breaks_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/scopes/{scope_id}/breaks/{break_id}", summary="A break, its rows and history")
def get_break(
    session: ReadSession, _: Viewer, scope_id: PathId, break_id: BreakId
) -> BreakDetailOut:
    detail = views.break_detail(session, scope_id, break_id)
    if detail is None:
        raise Problem(404, "Not found", f"there is no break {break_id} in scope {scope_id}")
    return BreakDetailOut.model_validate(asdict(detail))


@router.post(
    "/scopes/{scope_id}/breaks/{break_id}/actions",
    summary="Post the missing receipt, reverse a duplicate, explain, or assign",
    responses=problem_responses(502),
)
def act_on_break(
    runtime: RuntimeDep,
    principal: Operator,
    scope_id: PathId,
    break_id: BreakId,
    body: BreakActionIn,
) -> ResolutionOut:
    try:
        if body.action == "explain":
            with runtime.db.transaction() as session:
                done = resolutions.explain(session, principal, scope_id, break_id, body.reason)
        elif body.action == "assign":
            with runtime.db.transaction() as session:
                done = resolutions.assign(session, principal, scope_id, break_id, body.user)
        elif body.action == "post_receipt":
            done = asyncio.run(
                resolutions.post_and_confirm(
                    runtime,
                    principal,
                    scope_id,
                    break_id,
                    trigger="api",
                    on_account=body.on_account,
                    invoice_number=body.invoice_number,
                    note=body.reason,
                )
            )
        else:
            done = asyncio.run(
                resolutions.reverse_duplicate(
                    runtime, principal, scope_id, break_id, body.receipt_id, note=body.reason
                )
            )
    except ReconRefused as refused:
        raise _refused(refused) from None
    except UpstreamError as exc:
        raise Problem(502, "Not done", exc.message) from None
    return ResolutionOut.model_validate(asdict(done))


@router.get("/scopes/{scope_id}/batches", summary="Settlement batches, newest first")
def list_batches(session: ReadSession, _: Viewer, scope_id: PathId) -> list[BatchOut]:
    return [BatchOut.model_validate(row) for row in views.batches(session, scope_id)]


@router.get(
    "/scopes/{scope_id}/batches/{batch_number}",
    summary="A batch, its transactions and their receipts, and the deposit",
)
def get_batch(
    session: ReadSession,
    _: Viewer,
    scope_id: PathId,
    batch_number: Annotated[str, Path(max_length=20, pattern=r"^[0-9A-Za-z_-]+$")],
) -> BatchDrillOut:
    found = views.batch_detail(session, scope_id, batch_number)
    if found is None:
        raise Problem(404, "Not found", f"there is no batch {batch_number} in scope {scope_id}")
    return BatchDrillOut.model_validate(asdict(found))


@router.get("/scopes/{scope_id}/statements", summary="Imported bank statements")
def list_statements(session: ReadSession, _: Viewer, scope_id: PathId) -> list[StatementOut]:
    return [StatementOut.model_validate(asdict(row)) for row in views.statements(session, scope_id)]


@router.post(
    "/scopes/{scope_id}/statements",
    summary="Import a bank statement (BAI2, CAMT.053, OFX; CSV with a column mapping)",
    responses=problem_responses(413),
)
def upload_statement(
    runtime: RuntimeDep,
    principal: Operator,
    scope_id: PathId,
    statement: UploadFile,
    csv_mapping: Annotated[
        CleanText | None,
        Query(max_length=4000, description="For CSV: the column mapping as JSON (saved)."),
    ] = None,
) -> ImportOut:
    content = statement.file.read(MAX_STATEMENT_BYTES + 1)
    if len(content) > MAX_STATEMENT_BYTES:
        raise field_problem("statement", "is larger than 20 MB; split it by month", status=413)
    try:
        mapping = CsvMapping.model_validate_json(csv_mapping) if csv_mapping else None
    except ValueError as exc:
        raise field_problem("csv_mapping", str(exc).splitlines()[0]) from None
    try:
        with runtime.db.transaction() as session:
            result = import_statement(
                session,
                principal,
                get_scope(session, scope_id),
                content,
                statement.filename or "",
                csv_mapping=mapping,
            )
    except ReconRefused as refused:
        raise _refused(refused) from None
    return ImportOut.model_validate({**asdict(result), "message": result.message})


@router.get("/scopes/{scope_id}/periods", summary="Periods, closed and reopened")
def list_periods(session: ReadSession, _: Viewer, scope_id: PathId) -> list[PeriodOut]:
    return [PeriodOut.model_validate(asdict(row)) for row in views.periods(session, scope_id)]


@router.post("/scopes/{scope_id}/periods/{period}/close", summary="Sign off and lock a period")
def close(
    runtime: RuntimeDep,
    principal: Admin,
    scope_id: PathId,
    period: Period,
    body: CloseIn | None = None,
) -> ClosedOut:
    try:
        with runtime.db.transaction() as session:
            closed = close_period(
                session,
                principal,
                get_scope(session, scope_id),
                period,
                note=(body or CloseIn()).note,
            )
            return ClosedOut(
                period=closed.period, status=closed.status, signed_off_by=closed.signed_off_by
            )
    except ReconRefused as refused:
        raise _refused(refused) from None


@router.post("/scopes/{scope_id}/periods/{period}/reopen", summary="Reopen a closed period")
def reopen(
    runtime: RuntimeDep, principal: Admin, scope_id: PathId, period: Period, body: ReopenIn
) -> ReopenedOut:
    try:
        with runtime.db.transaction() as session:
            found = reopen_period(
                session, principal, get_scope(session, scope_id), period, reason=body.reason
            )
            return ReopenedOut(
                period=found.period, status=found.status, reopen_reason=found.reopen_reason
            )
    except ReconRefused as refused:
        raise _refused(refused) from None


class ScopeSettingsIn(BaseModel):
    fee_schedule: dict[str, dict[str, Any] | None] | None = Field(
        default=None,
        description="Expected card fees per brand (visa, mastercard, amex, discover, other): "
        '{"visa": {"percent_bp": 180, "fixed_minor": 10}} is 1.80% + $0.10 a sale; null '
        "puts a brand back to the default. Brands not given keep their rate.",
    )
    alert: dict[str, Any] | None = Field(
        default=None,
        description='E-mail when unexplained breaks reach {"unexplained_breaks": 10} or '
        '{"unexplained_minor": 50000} (minor units); null turns a limit off.',
    )


@router.get("/scopes/{scope_id}/settings", summary="Expected card fees and the alert threshold")
def get_settings(session: ReadSession, _: Viewer, scope_id: PathId) -> ScopeSettingsOut:
    try:
        return ScopeSettingsOut.model_validate(settings_of(get_scope(session, scope_id)))
    except ReconRefused as refused:
        raise _refused(refused) from None


@router.patch(
    "/scopes/{scope_id}/settings",
    summary="Change the expected card fees or the alert threshold (audited)",
)
def change_settings(
    runtime: RuntimeDep, principal: Admin, scope_id: PathId, body: ScopeSettingsIn
) -> ScopeSettingsOut:
    try:
        with runtime.db.transaction() as session:
            scope = update_settings(
                session,
                scope_id,
                actor=principal.actor,
                fee_schedule=body.fee_schedule,
                alert=body.alert,
            )
            return ScopeSettingsOut.model_validate(settings_of(scope))
    except ReconRefused as refused:
        raise _refused(refused) from None
