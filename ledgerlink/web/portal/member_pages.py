"""Members in the portal: search and filters (incl. "without customer account"), member
detail with Create Account / Link existing (a suggestion, a typed customer id or a search
of the ledger's customers) / Unlink and the link history, adding and editing a member,
CSV import with row errors, and bulk create-and-link with a progress bar (HTMX polling).

Viewers read; operators (and administrators) add and edit members, import, link and run
bulk jobs. The member form is checked by the API's own rules (``MemberIn``, then
``build_member`` and the registry), so the portal and the API never disagree on what a
valid member is; each refusal is shown beside its field with what was typed kept.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.domain.card_numbers import contains_card_number
from ledgerlink.domain.members import (
    AccountType,
    FieldProblem,
    Member,
    MemberInvalid,
    MemberStatus,
)
from ledgerlink.domain.text import control_character_problem
from ledgerlink.identity.principal import Principal
from ledgerlink.invoice_requests import views as invoice_request_views
from ledgerlink.members import bulk, csv_io, linking, views
from ledgerlink.members.registry import (
    MemberFields,
    RegistryConflict,
    build_member,
    create_member,
    get_member,
    list_levels,
    load_member,
    member_fields,
    update_member,
)
from ledgerlink.members.search import MemberQuery, SearchInvalid, search
from ledgerlink.store.db import Database
from ledgerlink.sync import realtime_inbound_views
from ledgerlink.sync import views as sync_views
from ledgerlink.web.api.members_api import MAX_IMPORT_BYTES, LinkIn, MemberIn
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


# ---- adding and editing a member -------------------------------------------------------

#: The member form's fields (the API's ``MemberIn``), as the form names them.
FORM_FIELDS: tuple[str, ...] = tuple(MemberFields.names())
#: What the member's page says after the form saved.
SAVED = {
    "created": "Member added.",
    "updated": "Changes saved.",
    "unchanged": "Nothing changed: the member already had these details.",
}


def _member_form(
    request: Request,
    db: Database,
    *,
    typed: dict[str, str],
    editing: str | None,
    errors: dict[str, str] | None = None,
    problem: str = "",
    status_code: int = 200,
) -> Response:
    with db.read() as session:
        levels = [(row.code, row.name, row.is_active) for row in list_levels(session)]
    return render(
        request,
        "member_form.html",
        status_code=status_code,
        form=typed,
        editing=editing,
        errors=errors or {},
        problem=problem,
        levels=levels,
        account_types=[t.value for t in AccountType],
        statuses=[s.value for s in MemberStatus],
    )


def _refusals(problems: list[FieldProblem]) -> tuple[dict[str, str], str]:
    """(messages by form field, what is about no field of the form)."""
    errors: dict[str, str] = {}
    other: list[str] = []
    for p in problems:
        if p.field in FORM_FIELDS:
            errors[p.field] = f"{errors[p.field]}; {p.message}" if p.field in errors else p.message
        else:
            other.append(f"{p.field}: {p.message}")
    return errors, "; ".join(other)


def _checked(typed: dict[str, str]) -> Member:
    """The member the form describes, by the API's rules; :class:`MemberInvalid` naming
    every field at fault otherwise."""
    try:
        body = MemberIn.model_validate(typed)
    except ValidationError as exc:
        raise MemberInvalid(
            [FieldProblem(str(e["loc"][0]) if e["loc"] else "", e["msg"]) for e in exc.errors()]
        ) from None
    return build_member(MemberFields.from_mapping(body.model_dump()))


def _save(
    db: Database, principal: Principal, typed: dict[str, str], editing: str | None
) -> tuple[str, str]:
    """Store the member (a new one, or over ``editing``): (what happened, a key of SAVED;
    the member's number as stored)."""
    member = _checked(typed)
    with db.transaction() as session:
        if editing is None:
            create_member(session, principal, member)
            return "created", member.number
        changed = update_member(session, principal, editing, member)
        return ("updated" if changed else "unchanged"), member.number


async def _submit(
    request: Request, principal: Principal, db: Database, editing: str | None
) -> Response:
    data = await request.form()
    typed = {name: str(data.get(name) or "") for name in FORM_FIELDS}
    if editing is not None:  # the number is the page's, not the form's: it cannot change
        typed["member_number"] = editing
    try:
        outcome, number = await run_in_threadpool(_save, db, principal, typed, editing)
    except (MemberInvalid, RegistryConflict) as exc:  # beside the fields, the input kept
        if isinstance(exc, MemberInvalid):
            refusals, status = exc.problems, 422
        else:
            refusals, status = [FieldProblem(exc.field, str(exc))], 409
        errors, problem = _refusals(refusals)
        # ...except a card number: it goes no further, not even back to the browser
        kept = {k: "" if contains_card_number(v) else v for k, v in typed.items()}
        return await run_in_threadpool(
            lambda: _member_form(
                request,
                db,
                typed=kept,
                editing=editing,
                errors=errors,
                problem=problem,
                status_code=status,
            )
        )
    return RedirectResponse(f"/members/{number}?saved={outcome}", status_code=303)


@router.get("/members/new")
def new_member_page(request: Request, _: Operator, db: DatabaseDep) -> Response:
    typed = {name: "" for name in FORM_FIELDS}
    typed.update(account_type=AccountType.PERSONAL.value, status=MemberStatus.ACTIVE.value)
    return _member_form(request, db, typed=typed, editing=None)


@router.post("/members/new")
async def add_member(request: Request, principal: Operator, db: DatabaseDep) -> Response:
    return await _submit(request, principal, db, None)


@router.get("/members/{number}/edit")
def edit_member_page(request: Request, number: str, _: Operator, db: DatabaseDep) -> Response:
    with db.read() as session:
        member = load_member(session, get_member(session, number))
    typed = {k: str(v) for k, v in asdict(member_fields(member)).items()}
    return _member_form(request, db, typed=typed, editing=member.number)


@router.post("/members/{number}/edit")
async def edit_member(
    request: Request, number: str, principal: Operator, db: DatabaseDep
) -> Response:
    def current() -> str:  # MemberNotFound (a 404 page) for a member that is not there
        with db.read() as session:
            return get_member(session, number).number

    return await _submit(request, principal, db, await run_in_threadpool(current))


# ---- one member ------------------------------------------------------------------------


@router.get("/members/{number}")
async def member_page(
    request: Request,
    number: str,
    _: Viewer,
    runtime: RuntimeDep,
    cache: CustomerIndexDep,
    candidates_for: int | None = None,
    customer_q: str = "",
    saved: str = "",
) -> Response:
    candidates = None
    found = None
    error = None
    customer_q = customer_q.strip()[:200]
    search_error = control_character_problem(customer_q)
    if search_error:  # refused beside the search box, never sent to the ledger
        search_error = f"{search_error}; type letters, digits or punctuation only"
    if candidates_for is not None:
        # Shown on the member's page, not as an error page: the member is still there.
        try:
            async with open_ledger(runtime, candidates_for) as ledger:
                index = await cache.get(candidates_for, ledger)
                candidates = await linking.find_candidates(
                    runtime.db, ledger, number, candidates_for, index=index
                )
                if customer_q and not search_error:
                    found = await linking.search_customers(
                        runtime.db, ledger, number, candidates_for, customer_q, index=index
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
        found=found,
        customer_q=customer_q,
        search_error=search_error,
        notice=SAVED.get(saved),
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
    customer_id: Annotated[str, Form()] = "",
    relink: Annotated[str, Form()] = "",
) -> Response:
    typed = customer_id.strip()

    async def refused(message: str, field: str, status: int) -> Response:
        """The member's page with *Link existing* open, the id typed kept and why it was
        refused beside it (or above, when it is not about the id)."""
        beside = field == "customer_id"
        return await _detail_page(
            request,
            runtime.db,
            number,
            candidates_for=connection_id,
            customer_id=typed,
            link_error=message if beside else None,
            error=None if beside else message,
            status_code=status,
        )

    if not typed:
        return await refused(
            "is empty: type the customer's id, or search the ledger's customers by name or "
            "number and pick one",
            "customer_id",
            422,
        )
    try:  # the API's rules for a link request (length, no control characters)
        LinkIn.model_validate(
            {"connection_id": connection_id, "customer_id": typed, "relink": bool(relink)}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        return await refused(first["msg"], field, 422)
    try:
        async with open_ledger(runtime, connection_id) as ledger:
            outcome = await linking.link_existing(
                runtime.db,
                principal,
                ledger,
                number,
                connection_id,
                typed,
                relink=bool(relink),
            )
    except linking.LinkError as exc:
        return await refused(exc.message, exc.field, exc.status)
    except Problem as exc:
        return await refused(exc.detail, "", exc.status)
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
    found: list[linking.Candidate] | None = None,
    customer_q: str = "",
    search_error: str | None = None,
    customer_id: str = "",
    link_error: str | None = None,
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
        agreements = realtime_inbound_views.agreements(session, row.id)
        invoice_requests = invoice_request_views.member_panel(session, row.number)
    active = {e.connection_id: e for e in history if e.active}
    return render(
        request,
        "member_detail.html",
        status_code=status_code,
        member=member,
        history=history,
        ledger_view=ledger_view,
        agreements=agreements,
        invoice_requests=invoice_requests,
        active=active,
        connections=connections,
        candidates=candidates,
        candidates_for=candidates_for,
        found=found,
        customer_q=customer_q,
        search_error=search_error,
        customer_id=customer_id,
        link_error=link_error,
        notice=notice,
        warning=warning,
        error=error,
    )
