"""Members in the portal: search and filters (incl. "without customer account"), member
detail with Create Account / Link existing / Unlink and the link history, CSV import with
row errors, and bulk create-and-link with a progress bar (HTMX polling).

Viewers read; operators import, link and run bulk jobs.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from ledgerlink.domain.members import AccountType, MemberStatus
from ledgerlink.identity.principal import Principal
from ledgerlink.members import bulk, csv_io, linking
from ledgerlink.members.registry import (
    MemberNotFound,
    get_member,
    list_levels,
    load_member,
)
from ledgerlink.members.search import MemberQuery, SearchInvalid, matching_ids, search
from ledgerlink.store.mapping_repo import mapping_repository
from ledgerlink.sync import views as sync_views
from ledgerlink.web.api.members_api import (
    MAX_IMPORT_BYTES,
    index_cache,
    ledger_connections,
    open_ledger,
)
from ledgerlink.web.portal.rendering import render
from ledgerlink.web.problems import Problem
from ledgerlink.web.security import operator, viewer

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
    _: Annotated[Principal, Depends(viewer)],
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
    with request.app.state.db.read() as session:
        levels = [(row.code, row.name) for row in list_levels(session)]
        connections = [(c.id, c.name, c.kind) for c in ledger_connections(session)]
        try:
            result = search(session, query)
        except SearchInvalid as exc:
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
def import_page(request: Request, _: Annotated[Principal, Depends(viewer)]) -> Response:
    return render(request, "member_import.html", report=None, refused=None)


@router.post("/members/import")
async def import_upload(
    request: Request,
    principal: Annotated[Principal, Depends(operator)],
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
        with request.app.state.db.transaction() as session:
            report = csv_io.import_csv(session, principal, data, dry_run=bool(dry_run))
    except csv_io.FileRefused as exc:
        return render(
            request, "member_import.html", status_code=422, report=None, refused=exc.errors
        )
    return render(
        request, "member_import.html", report=report, refused=None, filename=file.filename
    )


@router.post("/members/bulk")
def bulk_start(
    request: Request,
    principal: Annotated[Principal, Depends(operator)],
    connection_id: Annotated[int, Form()],
    member: Annotated[list[str] | None, Form()] = None,
    all_filtered: Annotated[str, Form()] = "",
    q: Annotated[str, Form()] = "",
    level: Annotated[str, Form()] = "",
    account_type: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "",
) -> Response:
    runtime = request.app.state.runtime
    try:
        with runtime.db.transaction() as session:
            if all_filtered:
                query = _filters(q, "1", str(connection_id), level, account_type, status)
                ids = matching_ids(session, query)
                selection: dict[str, Any] = {"all_filtered": True, "q": q, "level": level}
            else:
                ids = bulk.member_ids_for(session, member or [])
                selection = {"member_numbers": len(ids)}
            run_id = bulk.start(session, runtime.jobs, principal, connection_id, ids, selection).id
    except (linking.LinkError, SearchInvalid) as exc:
        raise Problem(422, "Cannot start", str(exc)) from None
    return RedirectResponse(f"/members/bulk/{run_id}", status_code=303)


@router.get("/members/bulk/{run_id}")
def bulk_page(request: Request, run_id: int, _: Annotated[Principal, Depends(viewer)]) -> Response:
    return render(request, "member_bulk.html", run=_progress(request, run_id))


@router.get("/members/bulk/{run_id}/progress")
def bulk_progress_fragment(
    request: Request, run_id: int, _: Annotated[Principal, Depends(viewer)]
) -> Response:
    return render(request, "member_bulk_progress.html", run=_progress(request, run_id))


@router.post("/members/bulk/{run_id}/retry")
def bulk_retry(
    request: Request, run_id: int, principal: Annotated[Principal, Depends(operator)]
) -> Response:
    runtime = request.app.state.runtime
    try:
        with runtime.db.transaction() as session:
            bulk.retry_failed(session, runtime.jobs, principal, run_id)
    except linking.LinkError as exc:
        raise Problem(422, "Cannot retry", exc.message) from None
    return RedirectResponse(f"/members/bulk/{run_id}", status_code=303)


def _progress(request: Request, run_id: int) -> dict[str, Any]:
    try:
        with request.app.state.db.read() as session:
            return bulk.progress(session, run_id)
    except linking.LinkError as exc:
        raise Problem(404, "Not found", exc.message) from None


@router.get("/members/{number}")
async def member_page(
    request: Request,
    number: str,
    _: Annotated[Principal, Depends(viewer)],
    candidates_for: int | None = None,
) -> Response:
    candidates = None
    error = None
    if candidates_for is not None:
        try:
            async with open_ledger(request, candidates_for) as ledger:
                index = await index_cache(request).get(candidates_for, ledger)
                candidates = await linking.find_candidates(
                    request.app.state.db, ledger, number, candidates_for, index=index
                )
        except linking.LinkError as exc:
            error = exc.message
        except Problem as exc:
            error = exc.detail
        except Exception as exc:
            from ledgerlink.connectors.errors import UpstreamError

            if not isinstance(exc, UpstreamError):
                raise
            error = f"{exc.system_name}: {exc.message}"
    return _detail(
        request, number, candidates=candidates, candidates_for=candidates_for, error=error
    )


@router.post("/members/{number}/create-account")
async def create_account(
    request: Request,
    number: str,
    principal: Annotated[Principal, Depends(operator)],
    connection_id: Annotated[int, Form()],
    force: Annotated[str, Form()] = "",
) -> Response:
    try:
        async with open_ledger(request, connection_id) as ledger:
            outcome = await linking.create_and_link(
                request.app.state.db,
                principal,
                ledger,
                number,
                connection_id,
                force=bool(force),
                cache=index_cache(request),
                mappings=mapping_repository(request.app.state.runtime.settings),
            )
    except linking.LikelyDuplicates as exc:
        return _detail(
            request,
            number,
            candidates=exc.candidates,
            candidates_for=connection_id,
            warning=exc.message,
            status_code=409,
        )
    except linking.LinkError as exc:
        return _detail(request, number, error=exc.message, status_code=exc.status)
    except Problem as exc:
        return _detail(request, number, error=exc.detail, status_code=exc.status)
    return _detail(request, number, notice=outcome.message)


@router.post("/members/{number}/link")
async def link_existing(
    request: Request,
    number: str,
    principal: Annotated[Principal, Depends(operator)],
    connection_id: Annotated[int, Form()],
    customer_id: Annotated[str, Form(max_length=100)],
    relink: Annotated[str, Form()] = "",
) -> Response:
    try:
        async with open_ledger(request, connection_id) as ledger:
            outcome = await linking.link_existing(
                request.app.state.db,
                principal,
                ledger,
                number,
                connection_id,
                customer_id,
                relink=bool(relink),
            )
    except linking.LinkError as exc:
        return _detail(request, number, error=exc.message, status_code=exc.status)
    except Problem as exc:
        return _detail(request, number, error=exc.detail, status_code=exc.status)
    return _detail(request, number, notice=outcome.message)


@router.post("/members/{number}/unlink")
def unlink(
    request: Request,
    number: str,
    principal: Annotated[Principal, Depends(operator)],
    connection_id: Annotated[int, Form()],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    try:
        link = linking.unlink(request.app.state.db, principal, number, connection_id, reason)
    except linking.LinkError as exc:
        return _detail(request, number, error=exc.message, status_code=exc.status)
    return _detail(
        request,
        number,
        notice=f"Unlinked customer {link.customer_number or link.customer_id}; it stays in "
        "the ledger.",
    )


def _detail(
    request: Request,
    number: str,
    *,
    candidates: list[linking.Candidate] | None = None,
    candidates_for: int | None = None,
    notice: str | None = None,
    warning: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    with request.app.state.db.read() as session:
        try:
            row = get_member(session, number)
        except MemberNotFound as exc:
            raise Problem(404, "Not found", str(exc)) from None
        member = load_member(session, row)
        history = linking.history(session, row.id)
        connections = [(c.id, c.name, c.kind) for c in ledger_connections(session)]
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
