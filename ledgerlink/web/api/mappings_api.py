"""Mapping specs and shared tables: read, version, roll back, preview.

Saving and rolling back need the admin role; previews (which write nothing) need an
operator. A spec that does not validate is answered with a problem document whose
``errors`` name the file, line and field of every fault.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, TypedDict

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ledgerlink.mapping.engine import to_json
from ledgerlink.mapping.errors import MappingValueError, SpecError
from ledgerlink.mapping.preview import MAX_PREVIEW, run_preview
from ledgerlink.mapping.scope import MappingContext
from ledgerlink.mapping.spec import MappingSpec
from ledgerlink.mapping.transforms.customer_ids import LinkTable
from ledgerlink.opaque import MappedRecord
from ledgerlink.store.mapping_models import MappingVersion
from ledgerlink.store.mapping_repo import (
    MappingRepository,
    UnknownMapping,
    exact_numbers,
    preview_source,
)
from ledgerlink.web.api.inputs import INT64_MAX, CleanDocument, CleanText
from ledgerlink.web.api.outputs import ResponseModel
from ledgerlink.web.deps import (
    Admin,
    MappingsDep,
    Operator,
    ReadSession,
    RuntimeDep,
    Viewer,
    WriteSession,
)
from ledgerlink.web.problems import Problem, field_problem

router = APIRouter(tags=["mappings"])

#: A spec's or table's name in a path.
SpecName = Annotated[CleanText, Path(max_length=64)]


class SpecIn(BaseModel):
    yaml: CleanDocument = Field(
        min_length=1, max_length=256 * 1024, description="The whole spec as YAML."
    )
    comment: CleanText = Field(default="", max_length=500)


class RollbackIn(BaseModel):
    version: int = Field(
        strict=True,
        ge=0,
        le=INT64_MAX,
        description="The version to restore; 0 is the shipped default.",
    )
    comment: CleanText = Field(default="", max_length=500)


class PreviewIn(BaseModel):
    yaml: CleanDocument | None = Field(
        default=None,
        max_length=256 * 1024,
        description="A draft to preview instead of the active spec.",
    )
    tables: dict[str, CleanText] = Field(
        default_factory=dict, description="Drafts of shared tables (name → YAML) to preview with."
    )
    records: list[MappedRecord] | None = Field(
        default=None,
        max_length=MAX_PREVIEW,
        description="Sample records (the source system's fields).",
    )
    source: Literal["sample", "recent"] = Field(
        default="sample",
        description="'recent': the most recent real records, once a connector provides them.",
    )
    limit: int = Field(default=20, strict=True, ge=1, le=MAX_PREVIEW)
    links: list[dict[str, str]] = Field(
        default_factory=list,
        description="Customer ID links to preview with, "
        "e.g. {'member': 'M00001', 'sbc_contact_id': '…'}.",
    )


# ---- responses -------------------------------------------------------------------------


class VersionOut(ResponseModel):
    version: int
    ref: str = Field(description="What runs record, e.g. 'payment_status@v3'.")
    author: str
    comment: str
    created_at: str
    sha256: str
    is_active: bool
    rolled_back_from: int | None


class SavedVersionOut(ResponseModel):
    """The version a save or a rollback made (now active)."""

    name: str
    version: int
    ref: str
    author: str
    comment: str
    created_at: str
    sha256: str
    is_active: bool
    rolled_back_from: int | None


class MappingSummaryOut(ResponseModel):
    """A spec or shared table; ``problem`` is there only when it does not validate."""

    name: str
    used_by: str
    version: str = Field(description="The active version's reference.")
    origin: str = Field(description="'database', 'config' or 'package'.")
    kind: str | None
    description: str
    source: str | None
    target: str | None
    valid: bool
    problem: str | None = None


class MappingDetailOut(MappingSummaryOut):
    yaml: str
    file: str
    history: list[VersionOut]


class FieldErrorOut(ResponseModel):
    field: str
    message: str
    fix: str


class NoteOut(ResponseModel):
    field: str
    kind: str
    # what a transform noted (a rounding remainder, an exchange rate): its own shape
    detail: dict[str, Any]


class PreviewRowOut(ResponseModel):
    index: int
    input: MappedRecord = Field(description="The source record.")
    output: MappedRecord = Field(description="What the spec made of it.")
    errors: list[FieldErrorOut]
    notes: list[NoteOut]


class PreviewOut(ResponseModel):
    spec: str
    version: str = Field(description="The spec version previewed, or 'draft'.")
    source: str = Field(description="Where the records came from.")
    records: int
    failed: int
    rows: list[PreviewRowOut]
    tables: dict[str, str] = Field(description="Shared table → the version used.")


def version_out(row: MappingVersion) -> VersionOut:
    return VersionOut(
        version=row.version,
        ref=f"{row.name}@v{row.version}",
        author=row.author,
        comment=row.comment,
        created_at=row.created_at.isoformat(),
        sha256=row.sha256,
        is_active=row.is_active,
        rolled_back_from=row.rolled_back_from,
    )


def saved_out(name: str, row: MappingVersion) -> SavedVersionOut:
    return SavedVersionOut.model_validate({"name": name, **version_out(row).model_dump()})


#: Where ledgerlink runs each shipped spec, said for the people who edit them.
USED_BY: dict[str, str] = {
    "member_to_sbc_contact": "Member details sync (what SBC is sent); creating a contact when "
    "linking",
    "sbc_contact_to_member": "Member details sync (how an SBC contact reads in the registry)",
    "member_to_sage500_customer": "Member details sync (what Sage 500 is sent); creating a "
    "customer when linking",
    "sage500_customer_to_member": "Member details sync (how a Sage 500 customer reads in the "
    "registry)",
    "paytrace_transaction_to_sage500_cash_receipt": "Card payments posted to Sage 500 (date, GL "
    "account, reference)",
    "paytrace_transaction_to_sbc_contact_payment": "Card payments posted to SBC (date, reference)",
    "paytrace_customer_to_sage500_customer": "PayTrace customer profiles sync (how a profile "
    "reads in Sage 500)",
    "sage500_customer_to_paytrace_customer": "PayTrace customer profiles sync (what a profile "
    "is sent)",
    "paytrace_customer_to_sbc_contact": "PayTrace customer profiles sync (how a profile reads "
    "in SBC)",
    "sbc_contact_to_paytrace_customer": "PayTrace customer profiles sync (what a profile is sent)",
    "payment_status": "The card-payment specs (status translation)",
}


class MappingSummary(TypedDict):
    """A spec or table as the API and the portal list it; ``problem`` only when invalid."""

    name: str
    used_by: str
    version: str
    origin: str
    kind: str | None
    description: str
    source: str | None
    target: str | None
    valid: bool
    problem: NotRequired[str]


def summary(repo: MappingRepository, session: Session, name: str) -> MappingSummary:
    """The spec's summary. Routes that answer with it leave unset fields out
    (``response_model_exclude_unset``), so a valid spec has no ``problem`` key."""
    source = repo.text(session, name)
    out: MappingSummary = {
        "name": name,
        "used_by": USED_BY.get(name, "Previews"),
        "version": source.ref,
        "origin": source.origin,
        "kind": None,
        "description": "",
        "source": None,
        "target": None,
        "valid": True,
    }
    try:
        document = repo.document(source).document
    except SpecError as exc:
        out["valid"], out["problem"] = False, str(exc)
        return out
    out["kind"], out["description"] = document.kind, document.description
    if isinstance(document, MappingSpec):
        out["source"], out["target"] = document.source, document.target
    return out


@router.get(
    "/mappings",
    summary="List mapping specs and shared tables",
    response_model_exclude_unset=True,
)
def list_mappings(_: Viewer, repo: MappingsDep, session: ReadSession) -> list[MappingSummaryOut]:
    return [
        MappingSummaryOut.model_validate(summary(repo, session, name))
        for name in repo.names(session)
    ]


@router.get(
    "/mappings/{name}",
    summary="A spec's active YAML and its version history",
    response_model_exclude_unset=True,
)
def get_mapping(
    name: SpecName, _: Viewer, repo: MappingsDep, session: ReadSession
) -> MappingDetailOut:
    source = repo.text(session, name)
    return MappingDetailOut.model_validate(
        {
            **summary(repo, session, name),
            "yaml": source.text,
            "file": source.file,
            "history": [version_out(row) for row in repo.history(session, name)],
        }
    )


@router.put("/mappings/{name}", summary="Save a new version (validated, audited)")
def put_mapping(
    name: SpecName, body: SpecIn, principal: Admin, repo: MappingsDep, session: WriteSession
) -> SavedVersionOut:
    try:
        row = repo.save(session, principal, name, body.yaml, body.comment)
    except UnknownMapping as exc:  # says where a new spec goes, which a lookup does not
        raise Problem(
            404,
            "Not found",
            f"{exc}; new specs ship with ledgerlink or go in the configuration directory",
        ) from None
    return saved_out(name, row)


@router.post("/mappings/{name}/rollback", summary="Activate an earlier version as a new version")
def rollback_mapping(
    name: SpecName, body: RollbackIn, principal: Admin, repo: MappingsDep, session: WriteSession
) -> SavedVersionOut:
    try:
        row = repo.rollback(session, principal, name, body.version, body.comment)
    except LookupError as exc:  # an unknown spec, or a version it never had
        raise Problem(404, "Not found", str(exc)) from None
    return saved_out(name, row)


@router.post(
    "/mappings/{name}/preview", summary="Run a spec (or a draft) over records; writes nothing"
)
def preview_mapping(
    name: SpecName,
    body: PreviewIn,
    _: Operator,
    runtime: RuntimeDep,
    repo: MappingsDep,
    session: ReadSession,
) -> PreviewOut:
    active = repo.load(session, name, draft=body.yaml, draft_tables=body.tables or None)
    source = preview_source(
        active.compiled.spec.source,
        runtime=runtime,
        samples=exact_numbers(body.records) if body.records else None,
        recent=body.source == "recent",
        limit=body.limit,
    )
    try:
        context = MappingContext(links=LinkTable(body.links))
    except MappingValueError as exc:
        raise field_problem("links", exc.message) from None
    result = run_preview(active.compiled, source, body.limit, context).as_dict()
    result["version"] = "draft" if body.yaml is not None else active.version
    result["tables"] = active.tables
    return PreviewOut.model_validate(to_json(result))
