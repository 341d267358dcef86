"""Members, membership levels, CSV import/export, and member ↔ customer-account links.

Reading needs a viewer; changing members, importing and linking need an operator;
membership levels (prices) are configuration and need an administrator. Every refusal is
a problem document naming the field and the fix; CSV import answers 200 with the rows it
imported and an ``errors`` list of (line, field, reason) for the rows it did not.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Path, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictBool

from ledgerlink.domain.members import MemberInvalid
from ledgerlink.identity.principal import Principal
from ledgerlink.members import bulk, csv_io, linking
from ledgerlink.members.registry import (
    MemberFields,
    MemberNotFound,
    RegistryConflict,
    build_level,
    build_member,
    create_level,
    create_member,
    delete_level,
    delete_member,
    get_level,
    get_member,
    level_from_row,
    level_snapshot,
    list_levels,
    load_member,
    snapshot,
    update_level,
    update_member,
)
from ledgerlink.members.search import MemberQuery, SearchInvalid, matching_ids, search
from ledgerlink.store.mapping_repo import mapping_repository
from ledgerlink.store.models import Connection
from ledgerlink.web.api.inputs import INT64_MAX, BodyId, CleanText, PathId, QueryId
from ledgerlink.web.problems import Problem, field_problem, problem_responses
from ledgerlink.web.security import admin, operator, viewer

router = APIRouter(tags=["members"])

MAX_IMPORT_BYTES = 50 * 1024 * 1024

#: A member number in a path (numbers are at most 40 characters).
MemberNumber = Annotated[CleanText, Path(max_length=40)]
#: A membership level's code in a path.
LevelCode = Annotated[CleanText, Path(max_length=64)]
#: A short filter value in a query string.
Filter = Annotated[CleanText | None, Query(max_length=64)]


class MemberIn(BaseModel):
    member_number: CleanText = Field(max_length=40)
    first_name: CleanText = Field(default="", max_length=200)
    last_name: CleanText = Field(default="", max_length=200)
    organisation: CleanText = Field(default="", max_length=200)
    email: CleanText = Field(default="", max_length=320)
    phone: CleanText = Field(default="", max_length=40)
    account_type: Literal["personal", "corporate"] = "personal"
    membership_level: CleanText = Field(max_length=64)
    status: Literal["pending", "active", "suspended", "terminated", "expired"] = "active"
    address_line1: CleanText = Field(default="", max_length=200)
    address_line2: CleanText = Field(default="", max_length=200)
    city: CleanText = Field(default="", max_length=100)
    region: CleanText = Field(default="", max_length=100)
    postal_code: CleanText = Field(default="", max_length=20)
    country: CleanText = Field(default="", max_length=60)


class LevelIn(BaseModel):
    code: CleanText = Field(max_length=64)
    name: CleanText = Field(max_length=200)
    annual_fee: CleanText = Field(max_length=32, description="Decimal string, e.g. '120.00'.")
    currency: CleanText = Field(default="USD", max_length=3)
    description: CleanText = Field(default="", max_length=500)


class LinkIn(BaseModel):
    connection_id: BodyId
    create: StrictBool = Field(
        default=False, description="Create the customer in the ledger, then link it."
    )
    customer_id: CleanText | None = Field(
        default=None, max_length=100, description="Link this existing customer instead."
    )
    force: StrictBool = Field(
        default=False, description="Create even though likely duplicates exist."
    )
    relink: StrictBool = Field(default=False, description="Replace the member's current link.")


class UnlinkIn(BaseModel):
    connection_id: BodyId
    reason: CleanText = Field(default="", max_length=500)


class BulkIn(BaseModel):
    connection_id: BodyId
    member_numbers: list[Annotated[CleanText, Field(max_length=40)]] = Field(
        default_factory=list, max_length=100_000
    )
    all_filtered: StrictBool = Field(
        default=False, description="Every member matching the filters below."
    )
    q: CleanText = Field(default="", max_length=200)
    level: CleanText | None = Field(default=None, max_length=64)
    account_type: CleanText | None = Field(default=None, max_length=64)
    status: CleanText | None = Field(default=None, max_length=64)


def invalid(exc: MemberInvalid) -> Problem:
    return Problem(
        422,
        "Invalid member",
        str(exc),
        kind="validation",
        errors=[p.as_dict() for p in exc.problems],
    )


def link_problem(exc: linking.LinkError) -> Problem:
    errors = [{"field": exc.field, "message": exc.message}] if exc.field else []
    problem = Problem(exc.status, "Linking refused", exc.message, kind="member-link", errors=errors)
    if isinstance(exc, linking.LikelyDuplicates):
        problem.title = "Likely duplicate"
        problem.kind = "likely-duplicate"
        problem.errors = [
            {"field": "customer_id", "message": ", ".join(c.reasons), "customer_id": c.customer.id}
            for c in exc.candidates
        ]
    return problem


def _member_out(session: Any, number: str) -> dict[str, Any]:
    row = get_member(session, number)
    out = snapshot(load_member(session, row))
    out["links"] = [e.as_dict() for e in linking.history(session, row.id) if e.active]
    out["created_at"] = row.created_at.isoformat()
    out["updated_at"] = row.updated_at.isoformat()
    return out


def _query(
    q: str,
    without_account: bool,
    connection_id: int | None,
    level: str | None,
    account_type: str | None,
    status: str | None,
    limit: int = 50,
    offset: int = 0,
) -> MemberQuery:
    return MemberQuery(
        q=q,
        without_account=without_account,
        connection_id=connection_id,
        level=level or None,
        account_type=account_type or None,
        status=status or None,
        limit=limit,
        offset=offset,
    )


# ---- levels ----------------------------------------------------------------------------


@router.get("/membership-levels", summary="Membership levels and their annual fees")
def get_levels(request: Request, _: Annotated[Principal, Depends(viewer)]) -> list[dict[str, Any]]:
    with request.app.state.db.read() as session:
        return [level_snapshot(level_from_row(row)) for row in list_levels(session)]


@router.post("/membership-levels", status_code=201, summary="Create a membership level")
def post_level(
    request: Request, body: LevelIn, principal: Annotated[Principal, Depends(admin)]
) -> dict[str, Any]:
    try:
        level = build_level(body.code, body.name, body.annual_fee, body.currency, body.description)
        with request.app.state.db.transaction() as session:
            create_level(session, principal, level)
    except MemberInvalid as exc:
        raise invalid(exc) from None
    except RegistryConflict as exc:
        raise field_problem(exc.field, str(exc), status=409) from None
    return level_snapshot(level)


@router.put("/membership-levels/{code}", summary="Change a membership level (not its code)")
def put_level(
    request: Request,
    code: LevelCode,
    body: LevelIn,
    principal: Annotated[Principal, Depends(admin)],
) -> dict[str, Any]:
    try:
        level = build_level(body.code, body.name, body.annual_fee, body.currency, body.description)
        with request.app.state.db.transaction() as session:
            update_level(session, principal, code, level)
    except MemberInvalid as exc:
        raise invalid(exc) from None
    except MemberNotFound as exc:
        raise Problem(404, "Not found", str(exc)) from None
    except RegistryConflict as exc:
        raise field_problem(exc.field, str(exc), status=409) from None
    return level_snapshot(level)


@router.delete("/membership-levels/{code}", status_code=204, summary="Delete an unused level")
def remove_level(
    request: Request, code: LevelCode, principal: Annotated[Principal, Depends(admin)]
) -> None:
    try:
        with request.app.state.db.transaction() as session:
            get_level(session, code)
            delete_level(session, principal, code)
    except MemberNotFound as exc:
        raise Problem(404, "Not found", str(exc)) from None
    except RegistryConflict as exc:
        raise field_problem(exc.field, str(exc), status=409) from None


# ---- members ---------------------------------------------------------------------------


@router.get("/members", summary="Search members by name, e-mail, phone or number, with filters")
def list_members(
    request: Request,
    _: Annotated[Principal, Depends(viewer)],
    q: Annotated[CleanText, Query(max_length=200)] = "",
    without_account: bool = False,
    connection_id: QueryId = None,
    level: Filter = None,
    account_type: Filter = None,
    status: Filter = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> dict[str, Any]:
    query = _query(q, without_account, connection_id, level, account_type, status, limit, offset)
    try:
        with request.app.state.db.read() as session:
            page = search(session, query)
    except SearchInvalid as exc:
        raise field_problem(exc.field, str(exc)) from None
    return {
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "items": [hit.as_dict() for hit in page.items],
    }


@router.post("/members", status_code=201, summary="Create a member")
def post_member(
    request: Request, body: MemberIn, principal: Annotated[Principal, Depends(operator)]
) -> dict[str, Any]:
    try:
        member = build_member(MemberFields.from_mapping(body.model_dump()))
        with request.app.state.db.transaction() as session:
            create_member(session, principal, member)
            return _member_out(session, member.number)
    except MemberInvalid as exc:
        raise invalid(exc) from None
    except RegistryConflict as exc:
        raise field_problem(exc.field, str(exc), status=409) from None


class CsvResponse(StreamingResponse):
    media_type = "text/csv"


@router.get(
    "/members/export",
    summary="Every member as CSV (re-imports as a no-op)",
    response_class=CsvResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def export_members(request: Request, _: Annotated[Principal, Depends(viewer)]) -> StreamingResponse:
    db = request.app.state.db

    def chunks() -> Any:
        with db.read() as session:
            yield from csv_io.export_csv(session)

    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="members.csv"'},
    )


@router.post("/members/import", summary="Import members from CSV; bad rows are reported")
async def import_members(
    request: Request,
    principal: Annotated[Principal, Depends(operator)],
    file: Annotated[UploadFile, File(description="CSV, UTF-8, header line first")],
    dry_run: bool = False,
) -> dict[str, Any]:
    data = await file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise field_problem("file", "is larger than 50 MB; split it into parts", status=413)
    return run_import(request, principal, data, dry_run=dry_run).as_dict()


def run_import(
    request: Request, principal: Principal, data: bytes, *, dry_run: bool
) -> csv_io.ImportReport:
    try:
        with request.app.state.db.transaction() as session:
            return csv_io.import_csv(session, principal, data, dry_run=dry_run)
    except csv_io.FileRefused as exc:
        raise Problem(
            422,
            "File refused",
            f"Nothing was imported: {exc}",
            kind="csv-import",
            errors=[
                {"field": e.field, "message": e.reason, "line": str(e.line)} for e in exc.errors
            ],
        ) from None


@router.get("/members/{number}", summary="One member with their active links")
def get_one(
    request: Request, number: MemberNumber, _: Annotated[Principal, Depends(viewer)]
) -> dict[str, Any]:
    try:
        with request.app.state.db.read() as session:
            return _member_out(session, number)
    except MemberNotFound as exc:
        raise Problem(404, "Not found", str(exc)) from None


@router.put("/members/{number}", summary="Replace a member's details")
def put_member(
    request: Request,
    number: MemberNumber,
    body: MemberIn,
    principal: Annotated[Principal, Depends(operator)],
) -> dict[str, Any]:
    try:
        member = build_member(MemberFields.from_mapping(body.model_dump()))
        with request.app.state.db.transaction() as session:
            update_member(session, principal, number, member)
            return _member_out(session, member.number)
    except MemberInvalid as exc:
        raise invalid(exc) from None
    except MemberNotFound as exc:
        raise Problem(404, "Not found", str(exc)) from None
    except RegistryConflict as exc:
        raise field_problem(exc.field, str(exc), status=409) from None


@router.delete("/members/{number}", status_code=204, summary="Delete a never-linked member")
def remove_member(
    request: Request, number: MemberNumber, principal: Annotated[Principal, Depends(operator)]
) -> None:
    try:
        with request.app.state.db.transaction() as session:
            delete_member(session, principal, number)
    except MemberNotFound as exc:
        raise Problem(404, "Not found", str(exc)) from None
    except RegistryConflict as exc:
        raise field_problem(exc.field, str(exc), status=409) from None


# ---- links -----------------------------------------------------------------------------


@asynccontextmanager
async def open_ledger(request: Request, connection_id: int) -> Any:
    """The connection's ledger adapter, closed afterwards."""
    from ledgerlink.connectors.errors import UpstreamError
    from ledgerlink.connectors.factory import ledger_for

    runtime = request.app.state.runtime
    with runtime.db.read() as session:
        try:
            connection = linking.ledger_connection(session, connection_id)
        except linking.LinkError as exc:
            raise link_problem(exc) from None
    try:
        ledger = ledger_for(runtime, connection)
    except UpstreamError as exc:
        raise Problem(
            409, "Connection not ready", f"{exc.system_name}: {exc.message}", kind="connection"
        ) from None
    try:
        yield ledger
    finally:
        await ledger.aclose()


def index_cache(request: Request) -> linking.CustomerIndexCache:
    state = request.app.state
    cache = getattr(state, "customer_index_cache", None)
    if cache is None:
        cache = linking.CustomerIndexCache()
        state.customer_index_cache = cache
    return cache


@router.get(
    "/members/{number}/candidates",
    summary="Customers in a ledger that are probably this member (same reference, e-mail, "
    "similar name)",
    responses=problem_responses(502),
)
async def candidates(
    request: Request,
    number: MemberNumber,
    connection_id: Annotated[int, Query(ge=1, le=INT64_MAX)],
    _: Annotated[Principal, Depends(viewer)],
) -> list[dict[str, Any]]:
    async with open_ledger(request, connection_id) as ledger:
        try:
            index = await index_cache(request).get(connection_id, ledger)
            found = await linking.find_candidates(
                request.app.state.db, ledger, number, connection_id, index=index
            )
        except linking.LinkError as exc:
            raise link_problem(exc) from None
        except Exception as exc:  # UpstreamError while loading the index
            from ledgerlink.connectors.errors import UpstreamError

            if isinstance(exc, UpstreamError):
                raise Problem(502, "Ledger unavailable", exc.message) from None
            raise
    return [c.as_dict() for c in found]


@router.post(
    "/members/{number}/links",
    summary="Create-and-link (create=true) or link an existing customer (customer_id)",
    responses=problem_responses(502),
)
async def post_link(
    request: Request,
    number: MemberNumber,
    body: LinkIn,
    principal: Annotated[Principal, Depends(operator)],
) -> dict[str, Any]:
    if body.create == (body.customer_id is not None):
        raise field_problem(
            "create", "give either create=true or a customer_id to link, not both or neither"
        )
    db = request.app.state.db
    async with open_ledger(request, body.connection_id) as ledger:
        try:
            if body.create:
                outcome = await linking.create_and_link(
                    db,
                    principal,
                    ledger,
                    number,
                    body.connection_id,
                    force=body.force,
                    cache=index_cache(request),
                    mappings=mapping_repository(request.app.state.runtime.settings),
                )
            else:
                outcome = await linking.link_existing(
                    db,
                    principal,
                    ledger,
                    number,
                    body.connection_id,
                    body.customer_id or "",
                    relink=body.relink,
                )
        except linking.LinkError as exc:
            raise link_problem(exc) from None
    return outcome.as_dict()


@router.post("/members/{number}/unlink", summary="End the member's link in a connection")
def post_unlink(
    request: Request,
    number: MemberNumber,
    body: UnlinkIn,
    principal: Annotated[Principal, Depends(operator)],
) -> dict[str, Any]:
    try:
        link = linking.unlink(
            request.app.state.db, principal, number, body.connection_id, body.reason
        )
    except linking.LinkError as exc:
        raise link_problem(exc) from None
    return {"unlinked": link.id, "customer_id": link.customer_id}


@router.get("/members/{number}/links", summary="The member's link history, newest first")
def link_history(
    request: Request, number: MemberNumber, _: Annotated[Principal, Depends(viewer)]
) -> list[dict[str, Any]]:
    try:
        with request.app.state.db.read() as session:
            row = get_member(session, number)
            return [e.as_dict() for e in linking.history(session, row.id)]
    except MemberNotFound as exc:
        raise Problem(404, "Not found", str(exc)) from None


@router.post("/member-links/bulk", status_code=202, summary="Start a bulk create-and-link job")
def start_bulk(
    request: Request, body: BulkIn, principal: Annotated[Principal, Depends(operator)]
) -> dict[str, Any]:
    runtime = request.app.state.runtime
    try:
        with runtime.db.transaction() as session:
            if body.all_filtered:
                query = _query(
                    body.q, True, body.connection_id, body.level, body.account_type, body.status
                )
                ids = matching_ids(session, query)
                selection: dict[str, Any] = {"all_filtered": True, **query_selection(query)}
            else:
                ids = bulk.member_ids_for(session, body.member_numbers)
                selection = {"member_numbers": len(ids)}
            run = bulk.start(session, runtime.jobs, principal, body.connection_id, ids, selection)
            run_id = run.id
    except SearchInvalid as exc:
        raise field_problem(exc.field, str(exc)) from None
    except linking.LinkError as exc:
        raise link_problem(exc) from None
    with runtime.db.read() as session:
        return bulk.progress(session, run_id, items=0)


def query_selection(query: MemberQuery) -> dict[str, Any]:
    return {
        k: v
        for k, v in {
            "q": query.q,
            "level": query.level,
            "account_type": query.account_type,
            "status": query.status,
        }.items()
        if v
    }


@router.get("/member-links/bulk/{run_id}", summary="A bulk run's progress and results")
def bulk_progress(
    request: Request,
    run_id: PathId,
    _: Annotated[Principal, Depends(viewer)],
    items: Annotated[int, Query(ge=0, le=5000)] = 500,
) -> dict[str, Any]:
    try:
        with request.app.state.db.read() as session:
            return bulk.progress(session, run_id, items=items)
    except linking.LinkError as exc:
        raise Problem(404, "Not found", exc.message) from None


@router.post("/member-links/bulk/{run_id}/retry", summary="Retry a bulk run's failed members")
def bulk_retry(
    request: Request, run_id: PathId, principal: Annotated[Principal, Depends(operator)]
) -> dict[str, Any]:
    runtime = request.app.state.runtime
    try:
        with runtime.db.transaction() as session:
            bulk.retry_failed(session, runtime.jobs, principal, run_id)
    except linking.LinkError as exc:
        raise link_problem(exc) from None
    with runtime.db.read() as session:
        return bulk.progress(session, run_id, items=0)


def ledger_connections(session: Any) -> list[Connection]:
    from sqlalchemy import select

    return list(
        session.scalars(
            select(Connection)
            .where(Connection.kind.in_(linking.ledger_kinds()))
            .order_by(Connection.name)
        )
    )
