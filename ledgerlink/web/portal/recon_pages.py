"""Reconciliation in the portal, per connection pair (scope) and period: the summary
(matched, breaks by type, deposits in transit by age), the breaks with filters and
export, a break with its rows, history and actions, the batch drill-down, statement
import (a refused file shows its line and reason; nothing is half-imported), running now,
and closing or reopening the period. Viewers read; operators run, import and resolve;
admins close and reopen.
"""

from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import quote_plus

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.recon import exports, resolutions, views
from ledgerlink.recon.imports import MAX_BYTES, import_statement
from ledgerlink.recon.periods import bounds, close_period, reopen_period
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.recon.runs import default_matcher, run_scope
from ledgerlink.recon.scopes import ensure_default_scopes, get_scope
from ledgerlink.store.types import utcnow
from ledgerlink.web.deps import Admin, Operator, ReadSession, RuntimeDep, Viewer, WriteSession
from ledgerlink.web.portal import page_charts, recon_rule_pages
from ledgerlink.web.portal.rendering import render, render_error

router = APIRouter()
router.include_router(recon_rule_pages.router)  # /recon/rules, before /recon/{scope_id}
STATUSES = ("open", "resolved", "explained", "all")


def _period(period: str) -> str:
    """The period asked for if it is a month (YYYY-MM), else this month."""
    try:
        bounds(period)
    except ReconRefused:
        return views.current_period(utcnow().date())
    return period


def _back(scope_id: int, period: str, *, notice: str = "", problem: str = "") -> Response:
    query = f"?period={quote_plus(period)}"
    if notice:
        query += f"&notice={quote_plus(notice)}"
    if problem:
        query += f"&problem={quote_plus(problem)}"
    return RedirectResponse(f"/recon/{scope_id}{query}", 303)


@router.get("/recon")
def recon_index(request: Request, principal: Viewer, session: WriteSession) -> Response:
    ensure_default_scopes(session, actor=principal.actor)
    rows = views.scopes(session)
    if len(rows) == 1:
        return RedirectResponse(f"/recon/{rows[0].id}", 303)
    return render(request, "recon_scopes.html", scopes=rows)


@router.get("/recon/{scope_id}")
def recon_page(
    request: Request,
    scope_id: int,
    _: Viewer,
    session: ReadSession,
    period: str = "",
    type: str = "",
    status: str = "open",
    q: str = "",
    notice: str = "",
    problem: str = "",
) -> Response:
    try:
        scope = get_scope(session, scope_id)
    except ReconRefused as refused:
        return render_error(request, 404, refused.message)
    period = _period(period)
    status = status if status in STATUSES else "open"
    summary = views.summary(session, scope, period)
    rows = views.break_rows(
        session,
        scope_id,
        views.BreakFilter(type=type or None, status=status, period=period, text=q or None),
    )
    return render(
        request,
        "recon.html",
        scope=scope,
        summary=summary,
        rows=rows,
        period=period,
        type=type,
        status=status,
        statuses=STATUSES,
        q=q,
        break_types=[(t.type, t.label) for t in summary.breaks_by_type],
        statements=views.statements(session, scope_id)[:10],
        runs=views.runs(session, scope_id, limit=5),
        batches=views.batches(session, scope_id, limit=20),
        periods=views.periods(session, scope_id),
        charts=[
            page_charts.cash_chart(
                views.cash_by_day(session, scope, period), scope.currency, period
            ),
            page_charts.transit_chart(
                views.in_transit_by_age(session, scope, period), scope.currency
            ),
        ],
        notice=notice,
        problem=problem,
    )


@router.get("/recon/{scope_id}/export")
def export(
    scope_id: int,
    _: Viewer,
    session: ReadSession,
    period: str = "",
    type: str = "",
    status: str = "open",
    q: str = "",
    format: str = "csv",
) -> Response:
    period = _period(period)
    rows = views.break_rows(
        session,
        scope_id,
        views.BreakFilter(
            type=type or None,
            status=status if status in STATUSES else "open",
            period=period,
            text=q or None,
            limit=10_000,
        ),
    )
    name = f"recon-{scope_id}-{period}-breaks"
    if format == "xlsx":
        return Response(
            exports.breaks_xlsx(rows),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return Response(
        exports.breaks_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/recon/{scope_id}/breaks/{break_id}")
def break_page(
    request: Request,
    scope_id: int,
    break_id: str,
    _: Viewer,
    session: ReadSession,
    period: str = "",
    notice: str = "",
) -> Response:
    detail = views.break_detail(session, scope_id, break_id)
    if detail is None:
        return render_error(request, 404, f"There is no break {break_id} here")
    return render(
        request,
        "recon_break.html",
        scope_id=scope_id,
        detail=detail,
        period=_period(period),
        notice=notice,
    )


@router.get("/recon/{scope_id}/batches/{batch_number}")
def batch_page(
    request: Request,
    scope_id: int,
    batch_number: str,
    _: Viewer,
    session: ReadSession,
    period: str = "",
) -> Response:
    drill = views.batch_detail(session, scope_id, batch_number)
    if drill is None:
        return render_error(request, 404, f"There is no settlement batch {batch_number} here")
    return render(
        request, "recon_batch.html", scope_id=scope_id, drill=drill, period=_period(period)
    )


@router.post("/recon/{scope_id}/run")
def run_now(
    scope_id: int,
    principal: Operator,
    runtime: RuntimeDep,
    period: Annotated[str, Form()] = "",
) -> Response:
    period = _period(period)
    try:
        outcome = asyncio.run(
            run_scope(
                runtime, scope_id, principal, trigger="portal", matcher=default_matcher(runtime.db)
            )
        )
    except (ReconRefused, UpstreamError) as exc:
        return _back(scope_id, period, problem=str(exc))
    return _back(scope_id, period, notice=outcome.message)


@router.post("/recon/{scope_id}/statements")
def upload_statement(
    request: Request,
    scope_id: int,
    principal: Operator,
    runtime: RuntimeDep,
    statement: Annotated[UploadFile | None, File()] = None,
    period: Annotated[str, Form()] = "",
) -> Response:
    period = _period(period)
    if statement is None or not statement.filename:
        return _back(scope_id, period, problem="Choose the bank statement file first")
    content = statement.file.read(MAX_BYTES + 1)
    try:
        with runtime.db.transaction() as session:
            result = import_statement(
                session, principal, get_scope(session, scope_id), content, statement.filename
            )
    except ReconRefused as refused:
        where = f"line {refused.line}: " if refused.line is not None else ""
        return _back(
            scope_id,
            period,
            problem=f"{statement.filename} was not imported (nothing of it was kept). "
            f"{where}{refused.message}",
        )
    return _back(scope_id, period, notice=f"{statement.filename}: {result.message}")


@router.post("/recon/{scope_id}/breaks/{break_id}")
def act_on_break(
    scope_id: int,
    break_id: str,
    principal: Operator,
    runtime: RuntimeDep,
    action: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    user: Annotated[str, Form()] = "",
    receipt_id: Annotated[str, Form()] = "",
    invoice_number: Annotated[str, Form()] = "",
    period: Annotated[str, Form()] = "",
) -> Response:
    period = _period(period)
    try:
        if action == "explain":
            with runtime.db.transaction() as session:
                done = resolutions.explain(session, principal, scope_id, break_id, reason)
        elif action == "assign":
            with runtime.db.transaction() as session:
                done = resolutions.assign(session, principal, scope_id, break_id, user)
        elif action in ("post_receipt", "post_on_account"):
            done = asyncio.run(
                resolutions.post_and_confirm(
                    runtime,
                    principal,
                    scope_id,
                    break_id,
                    trigger="portal",
                    on_account=action == "post_on_account",
                    invoice_number=invoice_number,
                    note=reason,
                )
            )
        elif action == "reverse_duplicate":
            done = asyncio.run(
                resolutions.reverse_duplicate(
                    runtime, principal, scope_id, break_id, receipt_id, note=reason
                )
            )
        else:
            return _back(scope_id, period, problem=f"{action!r} is not an action on a break")
    except ReconRefused as refused:
        return _back(scope_id, period, problem=f"Break {break_id}: {refused.message}")
    except UpstreamError as exc:
        return _back(scope_id, period, problem=f"Break {break_id}: {exc.message}")
    return _back(scope_id, period, notice=done.message)


@router.post("/recon/{scope_id}/periods/{period}/close")
def close(
    scope_id: int,
    period: str,
    principal: Admin,
    runtime: RuntimeDep,
    note: Annotated[str, Form()] = "",
) -> Response:
    try:
        with runtime.db.transaction() as session:
            closed = close_period(
                session, principal, get_scope(session, scope_id), period, note=note
            )
            message = f"Period {closed.period} closed and signed off by {closed.signed_off_by}"
    except ReconRefused as refused:
        return _back(scope_id, _period(period), problem=refused.message)
    return _back(scope_id, period, notice=message)


@router.post("/recon/{scope_id}/periods/{period}/reopen")
def reopen(
    scope_id: int,
    period: str,
    principal: Admin,
    runtime: RuntimeDep,
    reason: Annotated[str, Form()] = "",
) -> Response:
    try:
        with runtime.db.transaction() as session:
            found = reopen_period(
                session, principal, get_scope(session, scope_id), period, reason=reason
            )
            message = f"Period {found.period} reopened: {found.reopen_reason}"
    except ReconRefused as refused:
        return _back(scope_id, _period(period), problem=refused.message)
    return _back(scope_id, period, notice=message)
