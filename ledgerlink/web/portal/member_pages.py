"""Members in the portal: search and filters (incl. "without customer account"), member
detail with Create Account / Link existing / Unlink and the link history, CSV import with
row errors, and bulk create-and-link with a progress bar (HTMX polling).

Viewers read; operators import, link and run bulk jobs.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.domain.members import AccountType, MemberStatus
from ledgerlink.members import bulk, csv_io, linking, views
from ledgerlink.members.registry import get_member, list_levels, load_member
from ledgerlink.members.search import MemberQuery, SearchInvalid, search
from ledgerlink.store.db import Database
from ledgerlink.sync import views as sync_views
from ledgerlink.web.api.members_api import MAX_IMPORT_BYTES
from ledgerlink.web.deps import (
    CustomerIndexDep,
    DatabaseDep,
    MappingsDep,
    Operator,
    ReadSession,
    RuntimeDep,
    Viewer,
    open_ledger,
)
from ledgerlink.web.portal.rendering import render
from ledgerlink.web.problems import Problem

router = APIRouter()
PAGE = 50


def _filters(
    q: str,
    without_account: str,
    connection_id: str,
    level: str,
    account_type: str,
    status: str,
    page: int = 1,
) -> MemberQuery:
    return MemberQuery(
        q=q.strip(),
        without_account=without_account in ("1", "on", "true"),
        connection_id=int(connection_id) if connection_id.isdigit() else None,
        level=level or None,
        account_type=account_type or None,
        status=status or None,
        limit=PAGE,
        offset=max(page - 1, 0) * PAGE,
    )


@router.get("/members")
def members_page(
    request: Request,
    _: Viewer,
    session: ReadSession,
    q: str = "",
    without_account: str = "",
    connection_id: str = "",
    level: str = "",
    account_type: str = "",
    status: str = "",
    page: int = 1,
) -> Response:
    query = _filters(q, without_account, connection_id, level, account_type, status, page)
    error = None
    levels = [(row.code, row.name) for row in list_levels(session)]
    connections = [(c.id, c.name, c.kind) for c in views.ledger_connections(session)]
    try:
        result = search(session, query)
    except SearchInvalid as exc:  # the page again, with the filter's problem above it
        error, result = f"{exc.field}: {exc}", None
    params = {
        "q": q,
        "without_account": "1" if query.without_account else "",
        "connection_id": connection_id,
        "level": level,
        "account_type": account_type,
        "status": status,
    }
    base = "/members?" + urlencode({k: v for k, v in params.items() if v})
    return render(
        request,
        "members.html",
        query=query,
        params=params,
        result=result,
        error=error,
        levels=levels,
        connections=connections,
        account_types=[t.value for t in AccountType],
        statuses=[s.value for s in MemberStatus],
        page=max(page, 1),
        page_size=PAGE,
        base=base,
    )


@router.get("/members/import")
def import_page(request: Request, _: Viewer) -> Response:
    return render(request, "member_import.html", report=None, refused=None)


@router.post("/members/import")
async def import_upload(
    request: Request,
    principal: Operator,
    db: DatabaseDep,
    file: Annotated[UploadFile, File()],
    dry_run: Annotated[str, Form()] = "",
) -> Response:
    data = await file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        return render(
            request,
            "member_import.html",
            status_code=413,
            report=None,
            refused=[csv_io.RowError(0, "file", "is larger than 50 MB; split it into parts")],
        )
    try:
        report = await run_in_threadpool(
            views.import_file, db, principal, data, dry_run=bool(dry_run)
        )
    except csv_io.FileRefused as exc:  # the form again, listing why the file was refused
        return render(
            request, "member_import.html", status_code=422, report=None, refused=exc.errors
        )
    return render(
        request, "member_import.html", report=report, refused=None, filename=file.filename
    )


@router.post("/members/bulk")
def bulk_start(
    principal: Operator,
    runtime: RuntimeDep,
    connection_id: Annotated[int, Form()],
    member: Annotated[list[str] | None, Form()] = None,
    all_filtered: Annotated[str, Form()] = "",
    q: Annotated[str, Form()] = "",
    level: Annotated[str, Form()] = "",
    account_type: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "",
) -> Response:
    filtered = (
        _filters(q, "1", str(connection_id), level, account_type, status) if all_filtered else None
    )
    with runtime.db.transaction() as session:
        run_id = views.start_bulk(
            session,
            runtime.jobs,
            principal,
            connection_id,
            member_numbers=member or [],
            filtered=filtered,
        )
    return RedirectResponse(f"/members/bulk/{run_id}", status_code=303)


@router.get("/members/bulk/{run_id}")
def bulk_page(request: Request, run_id: int, _: Viewer, session: ReadSession) -> Response:
    return render(request, "member_bulk.html", run=bulk.progress(session, run_id))


@router.get("/members/bulk/{run_id}/progress")
def bulk_progress_fragment(
    request: Request, run_id: int, _: Viewer, session: ReadSession
) -> Response:
    return render(request, "member_bulk_progress.html", run=bulk.progress(session, run_id))


@router.post("/members/bulk/{run_id}/retry")
def bulk_retry(run_id: int, principal: Operator, runtime: RuntimeDep) -> Response:
    with runtime.db.transaction() as session:
        bulk.retry_failed(session, runtime.jobs, principal, run_id)
    return RedirectResponse(f"/members/bulk/{run_id}", status_code=303)


@router.get("/members/{number}")
async def member_page(
    request: Request,
    number: str,
    _: Viewer,
    runtime: RuntimeDep,
    cache: CustomerIndexDep,
    candidates_for: int | None = None,
) -> Response:
    candidates = None
    error = None
    if candidates_for is not None:
        # Shown on the member's page, not as an error page: the member is still there.
        try:
            async with open_ledger(runtime, candidates_for) as ledger:
                index = await cache.get(candidates_for, ledger)
                candidates = await linking.find_candidates(
                    runtime.db, ledger, number, candidates_for, index=index
                )
        except linking.LinkError as exc:
            error = exc.message
        except Problem as exc:
            error = exc.detail
        except UpstreamError as exc:
            error = f"{exc.system_name}: {exc.message}"
    return await _detail_page(
        request,
        runtime.db,
        number,
        candidates=candidates,
        candidates_for=candidates_for,
        error=error,
    )


@router.post("/members/{number}/create-account")
async def create_account(
    request: Request,
    number: str,
    principal: Operator,
    runtime: RuntimeDep,
    cache: CustomerIndexDep,
    mappings: MappingsDep,
    connection_id: Annotated[int, Form()],
    force: Annotated[str, Form()] = "",
) -> Response:
    # Every outcome is the member's page again, saying what happened.
    try:
        async with open_ledger(runtime, connection_id) as ledger:
            outcome = await linking.create_and_link(
                runtime.db,
                principal,
                ledger,
                number,
                connection_id,
                force=bool(force),
                cache=cache,
                mappings=mappings,
            )
    except linking.LikelyDuplicates as exc:
        return await _detail_page(
            request,
            runtime.db,
            number,
            candidates=exc.candidates,
            candidates_for=connection_id,
            warning=exc.message,
            status_code=409,
        )
    except linking.LinkError as exc:
        return await _detail_page(
            request, runtime.db, number, error=exc.message, status_code=exc.status
        )
    except Problem as exc:
        return await _detail_page(
            request, runtime.db, number, error=exc.detail, status_code=exc.status
        )
    return await _detail_page(request, runtime.db, number, notice=outcome.message)


@router.post("/members/{number}/link")
async def link_existing(
    request: Request,
    number: str,
    principal: Operator,
    runtime: RuntimeDep,
    connection_id: Annotated[int, Form()],
    customer_id: Annotated[str, Form(max_length=100)],
    relink: Annotated[str, Form()] = "",
) -> Response:
    try:
        async with open_ledger(runtime, connection_id) as ledger:
            outcome = await linking.link_existing(
                runtime.db,
                principal,
                ledger,
                number,
                connection_id,
                customer_id,
                relink=bool(relink),
            )
    except linking.LinkError as exc:
        return await _detail_page(
            request, runtime.db, number, error=exc.message, status_code=exc.status
        )
    except Problem as exc:
        return await _detail_page(
            request, runtime.db, number, error=exc.detail, status_code=exc.status
        )
    return await _detail_page(request, runtime.db, number, notice=outcome.message)


@router.post("/members/{number}/unlink")
def unlink(
    request: Request,
    number: str,
    principal: Operator,
    db: DatabaseDep,
    connection_id: Annotated[int, Form()],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    try:
        link = linking.unlink(db, principal, number, connection_id, reason)
    except linking.LinkError as exc:
        return _detail(request, db, number, error=exc.message, status_code=exc.status)
    return _detail(
        request,
        db,
        number,
        notice=f"Unlinked customer {link.customer_number or link.customer_id}; it stays in "
        "the ledger.",
    )


async def _detail_page(request: Request, db: Database, number: str, **shown: Any) -> Response:
    """:func:`_detail` from an ``async`` route: its reads run in the thread pool."""
    return await run_in_threadpool(lambda: _detail(request, db, number, **shown))


def _detail(
    request: Request,
    db: Database,
    number: str,
    *,
    candidates: list[linking.Candidate] | None = None,
    candidates_for: int | None = None,
    notice: str | None = None,
    warning: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    with db.read() as session:
        row = get_member(session, number)
        member = load_member(session, row)
        history = linking.history(session, row.id)
        connections = [(c.id, c.name, c.kind) for c in views.ledger_connections(session)]
        ledger_view = sync_views.member_ledger_view(session, row.id)
    active = {e.connection_id: e for e in history if e.active}
    return render(
        request,
        "member_detail.html",
        status_code=status_code,
        member=member,
        history=history,
        ledger_view=ledger_view,
        active=active,
        connections=connections,
        candidates=candidates,
        candidates_for=candidates_for,
        notice=notice,
        warning=warning,
        error=error,
    )
