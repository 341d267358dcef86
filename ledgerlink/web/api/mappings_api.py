"""Mapping specs and shared tables: read, version, roll back, preview.

Saving and rolling back need the admin role; previews (which write nothing) need an
operator. A spec that does not validate is answered with a problem document whose
``errors`` name the file, line and field of every fault.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ledgerlink.mapping.engine import to_json
from ledgerlink.mapping.errors import MappingValueError, SpecError
from ledgerlink.mapping.preview import MAX_PREVIEW, run_preview
from ledgerlink.mapping.scope import MappingContext
from ledgerlink.mapping.spec import MappingSpec
from ledgerlink.mapping.transforms.customer_ids import LinkTable
from ledgerlink.store.mapping_models import MappingVersion
from ledgerlink.store.mapping_repo import (
    MappingRepository,
    UnknownMapping,
    exact_numbers,
    preview_source,
)
from ledgerlink.web.api.inputs import INT64_MAX, CleanText
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
    yaml: CleanText = Field(
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
    yaml: CleanText | None = Field(
        default=None,
        max_length=256 * 1024,
        description="A draft to preview instead of the active spec.",
    )
    tables: dict[str, CleanText] = Field(
        default_factory=dict, description="Drafts of shared tables (name → YAML) to preview with."
    )
    records: list[dict[str, Any]] | None = Field(
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


def version_out(row: MappingVersion) -> dict[str, Any]:
    return {
        "version": row.version,
        "ref": f"{row.name}@v{row.version}",
        "author": row.author,
        "comment": row.comment,
        "created_at": row.created_at.isoformat(),
        "sha256": row.sha256,
        "is_active": row.is_active,
        "rolled_back_from": row.rolled_back_from,
    }


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


def summary(repo: MappingRepository, session: Session, name: str) -> dict[str, Any]:
    source = repo.text(session, name)
    out: dict[str, Any] = {
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
        out.update(valid=False, problem=str(exc))
        return out
    out.update(kind=document.kind, description=document.description)
    if isinstance(document, MappingSpec):
        out.update(source=document.source, target=document.target)
    return out


@router.get("/mappings", summary="List mapping specs and shared tables")
def list_mappings(_: Viewer, repo: MappingsDep, session: ReadSession) -> list[dict[str, Any]]:
    return [summary(repo, session, name) for name in repo.names(session)]


@router.get("/mappings/{name}", summary="A spec's active YAML and its version history")
def get_mapping(
    name: SpecName, _: Viewer, repo: MappingsDep, session: ReadSession
) -> dict[str, Any]:
    out = summary(repo, session, name)
    source = repo.text(session, name)
    out["yaml"] = source.text
    out["file"] = source.file
    out["history"] = [version_out(row) for row in repo.history(session, name)]
    return out


@router.put("/mappings/{name}", summary="Save a new version (validated, audited)")
def put_mapping(
    name: SpecName, body: SpecIn, principal: Admin, repo: MappingsDep, session: WriteSession
) -> dict[str, Any]:
    try:
        row = repo.save(session, principal, name, body.yaml, body.comment)
    except UnknownMapping as exc:  # says where a new spec goes, which a lookup does not
        raise Problem(
            404,
            "Not found",
            f"{exc}; new specs ship with ledgerlink or go in the configuration directory",
        ) from None
    return {"name": name, **version_out(row)}


@router.post("/mappings/{name}/rollback", summary="Activate an earlier version as a new version")
def rollback_mapping(
    name: SpecName, body: RollbackIn, principal: Admin, repo: MappingsDep, session: WriteSession
) -> dict[str, Any]:
    try:
        row = repo.rollback(session, principal, name, body.version, body.comment)
    except LookupError as exc:  # an unknown spec, or a version it never had
        raise Problem(404, "Not found", str(exc)) from None
    return {"name": name, **version_out(row)}


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
) -> dict[str, Any]:
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
    return cast(dict[str, Any], to_json(result))
