"""Members, membership levels, CSV import/export, and member ↔ customer-account links.

Reading needs a viewer; changing members, importing and linking need an operator;
membership levels (prices) are configuration and need an administrator. Every refusal is
a problem document naming the field and the fix; CSV import answers 200 with the rows it
imported and an ``errors`` list of (line, field, reason) for the rows it did not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, File, Path, Query, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ledgerlink.members import bulk, csv_io, linking, views
from ledgerlink.members.registry import (
    MemberFields,
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
    member_fields,
    update_level,
    update_member,
)
from ledgerlink.members.search import MemberQuery, search
from ledgerlink.web.api.inputs import INT64_MAX, BodyId, CleanText, PathId, QueryId
from ledgerlink.web.api.outputs import ResponseModel
from ledgerlink.web.deps import (
    Admin,
    CustomerIndexDep,
    DatabaseDep,
    MappingsDep,
    Operator,
    ReadSession,
    RuntimeDep,
    Viewer,
    WriteSession,
    open_ledger,
)
from ledgerlink.web.problems import field_problem, problem_responses

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


# ---- responses -------------------------------------------------------------------------


class LevelOut(ResponseModel):
    code: str
    name: str
    description: str
    annual_fee: str = Field(description="Decimal string, e.g. '120.00'.")
    currency: str
    is_active: bool


class LinkOut(ResponseModel):
    """One link of a member to a customer account (times as ISO 8601)."""

    id: int
    connection_id: int
    connection: str
    system: str
    customer_id: str
    customer_number: str
    customer_name: str
    created_customer: bool
    linked_at: str
    linked_by: str
    unlinked_at: str | None
    unlinked_by: str | None
    unlink_reason: str | None
    active: bool


class MemberOut(ResponseModel):
    """A member's normalised details (as text), their active links and when they changed."""

    member_number: str
    first_name: str
    last_name: str
    organisation: str
    email: str
    phone: str
    account_type: str
    membership_level: str
    status: str
    address_line1: str
    address_line2: str
    city: str
    region: str
    postal_code: str
    country: str
    links: list[LinkOut]
    created_at: str
    updated_at: str


class HitLinkOut(ResponseModel):
    connection_id: int
    connection: str
    system: str
    customer_id: str
    customer_number: str


class MemberHitOut(ResponseModel):
    number: str
    display_name: str
    first_name: str
    last_name: str
    organisation: str
    email: str
    phone: str
    account_type: str
    membership_level: str
    membership_level_name: str
    status: str
    links: list[HitLinkOut]


class MemberPage(ResponseModel):
    total: int
    limit: int
    offset: int
    items: list[MemberHitOut]


class RowErrorOut(ResponseModel):
    line: int = Field(description="1 is the header line.")
    field: str
    reason: str
    member_number: str


class ImportOut(ResponseModel):
    rows: int
    created: int
    updated: int
    unchanged: int
    rejected: int = Field(description="Lines not imported (each has errors).")
    dry_run: bool
    sha256: str
    errors: list[RowErrorOut]


class CandidateOut(ResponseModel):
    customer_id: str
    customer_number: str
    name: str
    email: str
    phone: str
    score: int
    reasons: list[str]
    linked_to: str | None = Field(description="The member it is linked to already, if any.")


class LinkOutcomeOut(ResponseModel):
    action: str = Field(description="created, linked_existing, already_linked or relinked.")
    member_number: str
    connection_id: int
    connection: str
    system: str
    customer_id: str
    customer_number: str
    customer_name: str
    link_id: int
    message: str


class UnlinkOut(ResponseModel):
    unlinked: int = Field(description="The id of the link that ended.")
    customer_id: str


class BulkItemOut(ResponseModel):
    member_number: str
    member_name: str
    status: str
    customer_id: str | None
    message: str | None


class BulkProgressOut(ResponseModel):
    """A bulk create-and-link run (times as ISO 8601)."""

    id: int
    status: str
    connection_id: int
    connection: str
    requested_by: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    total: int
    done: int
    percent: int
    counts: dict[str, int]
    last_error: str | None
    items: list[BulkItemOut]


def _member_out(session: Session, number: str) -> MemberOut:
    row = get_member(session, number)
    return MemberOut.model_validate(
        {
            **asdict(member_fields(load_member(session, row))),
            "links": [e.as_dict() for e in linking.history(session, row.id) if e.active],
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }
    )


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
def get_levels(_: Viewer, session: ReadSession) -> list[LevelOut]:
    return [
        LevelOut.model_validate(level_snapshot(level_from_row(row))) for row in list_levels(session)
    ]


@router.post("/membership-levels", status_code=201, summary="Create a membership level")
def post_level(body: LevelIn, principal: Admin, session: WriteSession) -> LevelOut:
    level = build_level(body.code, body.name, body.annual_fee, body.currency, body.description)
    create_level(session, principal, level)
    return LevelOut.model_validate(level_snapshot(level))


@router.put("/membership-levels/{code}", summary="Change a membership level (not its code)")
def put_level(code: LevelCode, body: LevelIn, principal: Admin, session: WriteSession) -> LevelOut:
    level = build_level(body.code, body.name, body.annual_fee, body.currency, body.description)
    update_level(session, principal, code, level)
    return LevelOut.model_validate(level_snapshot(level))


@router.delete("/membership-levels/{code}", status_code=204, summary="Delete an unused level")
def remove_level(code: LevelCode, principal: Admin, session: WriteSession) -> None:
    get_level(session, code)
    delete_level(session, principal, code)


# ---- members ---------------------------------------------------------------------------


@router.get("/members", summary="Search members by name, e-mail, phone or number, with filters")
def list_members(
    _: Viewer,
    session: ReadSession,
    q: Annotated[CleanText, Query(max_length=200)] = "",
    without_account: bool = False,
    connection_id: QueryId = None,
    level: Filter = None,
    account_type: Filter = None,
    status: Filter = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> MemberPage:
    query = _query(q, without_account, connection_id, level, account_type, status, limit, offset)
    page = search(session, query)
    return MemberPage(
        total=page.total,
        limit=limit,
        offset=offset,
        items=[MemberHitOut.model_validate(hit.as_dict()) for hit in page.items],
    )


@router.post("/members", status_code=201, summary="Create a member")
def post_member(body: MemberIn, principal: Operator, session: WriteSession) -> MemberOut:
    member = build_member(MemberFields.from_mapping(body.model_dump()))
    create_member(session, principal, member)
    return _member_out(session, member.number)


class CsvResponse(StreamingResponse):
    media_type = "text/csv"


@router.get(
    "/members/export",
    summary="Every member as CSV (re-imports as a no-op)",
    response_class=CsvResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def export_members(_: Viewer, db: DatabaseDep) -> StreamingResponse:
    def chunks() -> Iterator[str]:
        with db.read() as session:
            yield from csv_io.export_csv(session)

    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="members.csv"'},
    )


@router.post("/members/import", summary="Import members from CSV; bad rows are reported")
async def import_members(
    principal: Operator,
    db: DatabaseDep,
    file: Annotated[UploadFile, File(description="CSV, UTF-8, header line first")],
    dry_run: bool = False,
) -> ImportOut:
    data = await file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise field_problem("file", "is larger than 50 MB; split it into parts", status=413)
    report = await run_in_threadpool(views.import_file, db, principal, data, dry_run=dry_run)
    return ImportOut.model_validate(report.as_dict())


@router.get("/members/{number}", summary="One member with their active links")
def get_one(number: MemberNumber, _: Viewer, session: ReadSession) -> MemberOut:
    return _member_out(session, number)


@router.put("/members/{number}", summary="Replace a member's details")
def put_member(
    number: MemberNumber, body: MemberIn, principal: Operator, session: WriteSession
) -> MemberOut:
    member = build_member(MemberFields.from_mapping(body.model_dump()))
    update_member(session, principal, number, member)
    return _member_out(session, member.number)


@router.delete("/members/{number}", status_code=204, summary="Delete a never-linked member")
def remove_member(number: MemberNumber, principal: Operator, session: WriteSession) -> None:
    delete_member(session, principal, number)


# ---- links -----------------------------------------------------------------------------


@router.get(
    "/members/{number}/candidates",
    summary="Customers in a ledger that are probably this member (same reference, e-mail, "
    "similar name)",
    responses=problem_responses(502),
)
async def candidates(
    number: MemberNumber,
    connection_id: Annotated[int, Query(ge=1, le=INT64_MAX)],
    _: Viewer,
    runtime: RuntimeDep,
    cache: CustomerIndexDep,
) -> list[CandidateOut]:
    async with open_ledger(runtime, connection_id) as ledger:
        index = await cache.get(connection_id, ledger)
        found = await linking.find_candidates(
            runtime.db, ledger, number, connection_id, index=index
        )
    return [CandidateOut.model_validate(c.as_dict()) for c in found]


@router.post(
    "/members/{number}/links",
    summary="Create-and-link (create=true) or link an existing customer (customer_id)",
    responses=problem_responses(502),
)
async def post_link(
    number: MemberNumber,
    body: LinkIn,
    principal: Operator,
    runtime: RuntimeDep,
    cache: CustomerIndexDep,
    mappings: MappingsDep,
) -> LinkOutcomeOut:
    if body.create == (body.customer_id is not None):
        raise field_problem(
            "create", "give either create=true or a customer_id to link, not both or neither"
        )
    async with open_ledger(runtime, body.connection_id) as ledger:
        if body.create:
            outcome = await linking.create_and_link(
                runtime.db,
                principal,
                ledger,
                number,
                body.connection_id,
                force=body.force,
                cache=cache,
                mappings=mappings,
            )
        else:
            outcome = await linking.link_existing(
                runtime.db,
                principal,
                ledger,
                number,
                body.connection_id,
                body.customer_id or "",
                relink=body.relink,
            )
    return LinkOutcomeOut.model_validate(outcome.as_dict())


@router.post("/members/{number}/unlink", summary="End the member's link in a connection")
def post_unlink(
    number: MemberNumber, body: UnlinkIn, principal: Operator, db: DatabaseDep
) -> UnlinkOut:
    link = linking.unlink(db, principal, number, body.connection_id, body.reason)
    return UnlinkOut(unlinked=link.id, customer_id=link.customer_id)


@router.get("/members/{number}/links", summary="The member's link history, newest first")
def link_history(number: MemberNumber, _: Viewer, session: ReadSession) -> list[LinkOut]:
    row = get_member(session, number)
    return [LinkOut.model_validate(e.as_dict()) for e in linking.history(session, row.id)]


@router.post("/member-links/bulk", status_code=202, summary="Start a bulk create-and-link job")
def start_bulk(body: BulkIn, principal: Operator, runtime: RuntimeDep) -> BulkProgressOut:
    filtered = (
        _query(body.q, True, body.connection_id, body.level, body.account_type, body.status)
        if body.all_filtered
        else None
    )
    with runtime.db.transaction() as session:
        run_id = views.start_bulk(
            session,
            runtime.jobs,
            principal,
            body.connection_id,
            member_numbers=body.member_numbers,
            filtered=filtered,
        )
    with runtime.db.read() as session:
        return BulkProgressOut.model_validate(bulk.progress(session, run_id, items=0))


@router.get("/member-links/bulk/{run_id}", summary="A bulk run's progress and results")
def bulk_progress(
    run_id: PathId,
    _: Viewer,
    session: ReadSession,
    items: Annotated[int, Query(ge=0, le=5000)] = 500,
) -> BulkProgressOut:
    return BulkProgressOut.model_validate(bulk.progress(session, run_id, items=items))


@router.post("/member-links/bulk/{run_id}/retry", summary="Retry a bulk run's failed members")
def bulk_retry(run_id: PathId, principal: Operator, runtime: RuntimeDep) -> BulkProgressOut:
    with runtime.db.transaction() as session:
        bulk.retry_failed(session, runtime.jobs, principal, run_id)
    with runtime.db.read() as session:
        return BulkProgressOut.model_validate(bulk.progress(session, run_id, items=0))
