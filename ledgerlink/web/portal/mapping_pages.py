"""Settings → Mappings: the specs, their YAML, the GL account tables, previews and the
version history with roll back. Viewers read; operators preview; administrators save
and roll back."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from ledgerlink.mapping.engine import to_json
from ledgerlink.mapping.errors import SpecError, SpecProblem
from ledgerlink.mapping.functions import reference
from ledgerlink.mapping.loader import load_document, replace_table_rows
from ledgerlink.mapping.preview import MAX_PREVIEW, run_preview, sample_records
from ledgerlink.mapping.spec import MappingSpec
from ledgerlink.mapping.versions import VersionLabel, describe_version, saved_version
from ledgerlink.store.db import Database
from ledgerlink.store.mapping_repo import (
    RECENT_SOURCES,
    MappingRepository,
    PreviewUnavailable,
    preview_source,
)
from ledgerlink.web.api.mappings_api import summary
from ledgerlink.web.deps import Admin, DatabaseDep, MappingsDep, Operator, RuntimeDep, Viewer
from ledgerlink.web.portal.rendering import render
from ledgerlink.web.problems import Problem

router = APIRouter()

GL_TABLE = "gl_accounts"
#: How many of the newest real records a preview from the page runs over.
RECENT_LIMIT = 20
NOTICES = {
    "saved": "Saved as a new version. Runs from now on use it.",
    "rolled-back": "Rolled back: the earlier text is active again as a new version.",
}


@router.get("/settings/mappings")
def mappings_page(request: Request, _: Viewer, repo: MappingsDep, db: DatabaseDep) -> Response:
    with db.read() as session:
        specs = [summary(repo, session, name) for name in repo.names(session)]
        labels = {spec["name"]: _version_label(repo, session, spec["version"]) for spec in specs}
    return render(request, "mappings.html", specs=specs, labels=labels)


@router.get("/settings/mappings/{name}")
def mapping_page(
    request: Request,
    name: str,
    _: Viewer,
    repo: MappingsDep,
    db: DatabaseDep,
    done: str | None = None,
) -> Response:
    return _edit_page(request, repo, db, name, notice=NOTICES.get(done or ""))


@router.post("/settings/mappings/{name}/preview")
def preview(
    request: Request,
    name: str,
    _: Operator,
    runtime: RuntimeDep,
    repo: MappingsDep,
    db: DatabaseDep,
    yaml: Annotated[str, Form(max_length=256 * 1024)],
    samples: Annotated[str, Form(max_length=1024 * 1024)] = "",
    records_from: Annotated[str, Form(max_length=16)] = "samples",
    gl_transaction_type: Annotated[list[str] | None, Form()] = None,
    gl_payment_method: Annotated[list[str] | None, Form()] = None,
    gl_account: Annotated[list[str] | None, Form()] = None,
) -> Response:
    text, problems = _apply_gl_rows(name, yaml, gl_transaction_type, gl_payment_method, gl_account)
    if problems:
        return _edit_page(
            request, repo, db, name, yaml=text, samples=samples, problems=problems, status_code=422
        )
    recent = records_from == "recent"  # the newest real records instead of the samples
    records, sample_error = (None, None) if recent else _parse_samples(samples)
    if sample_error:
        return _edit_page(
            request, repo, db, name, yaml=text, samples=samples, error=sample_error, status_code=422
        )
    with db.read() as session:
        try:
            active = repo.load(session, name, draft=text)
            source = preview_source(
                active.compiled.spec.source,
                runtime=runtime,
                samples=records,
                recent=recent,
                limit=RECENT_LIMIT if recent else MAX_PREVIEW,
            )
        except SpecError as exc:  # the draft again, with its problems
            return _edit_page(
                request,
                repo,
                db,
                name,
                yaml=text,
                samples=samples,
                problems=exc.problems,
                status_code=422,
            )
        except PreviewUnavailable as exc:  # no real records to read: say why, keep the draft
            return _edit_page(
                request,
                repo,
                db,
                name,
                yaml=text,
                samples=samples,
                error=f"No real records to preview: {exc}.",
                status_code=409,
            )
    result = run_preview(active.compiled, source, MAX_PREVIEW)
    shown = to_json(result.as_dict())
    return _edit_page(request, repo, db, name, yaml=text, samples=samples, preview=shown)


@router.post("/settings/mappings/{name}/save")
def save(
    request: Request,
    name: str,
    principal: Admin,
    repo: MappingsDep,
    db: DatabaseDep,
    yaml: Annotated[str, Form(max_length=256 * 1024)],
    samples: Annotated[str, Form(max_length=1024 * 1024)] = "",
    comment: Annotated[str, Form(max_length=500)] = "",
    gl_transaction_type: Annotated[list[str] | None, Form()] = None,
    gl_payment_method: Annotated[list[str] | None, Form()] = None,
    gl_account: Annotated[list[str] | None, Form()] = None,
) -> Response:
    text, problems = _apply_gl_rows(name, yaml, gl_transaction_type, gl_payment_method, gl_account)
    if not problems:
        try:
            with db.transaction() as session:
                repo.save(session, principal, name, text, comment)
        except SpecError as exc:  # the draft again, with its problems
            problems = exc.problems
    if problems:
        return _edit_page(
            request, repo, db, name, yaml=text, samples=samples, problems=problems, status_code=422
        )
    return RedirectResponse(f"/settings/mappings/{name}?done=saved", status_code=303)


@router.post("/settings/mappings/{name}/rollback")
def rollback(
    request: Request,
    name: str,
    principal: Admin,
    repo: MappingsDep,
    db: DatabaseDep,
    version: Annotated[int, Form(ge=0)],
) -> Response:
    try:
        with db.transaction() as session:
            repo.rollback(session, principal, name, version)
    except SpecError as exc:
        return _edit_page(request, repo, db, name, problems=exc.problems, status_code=422)
    except LookupError as exc:  # an unknown spec, or a version it never had
        raise Problem(404, "Not found", str(exc)) from None
    return RedirectResponse(f"/settings/mappings/{name}?done=rolled-back", status_code=303)


# ---- helpers ------------------------------------------------------------------------------


def _version_label(repo: MappingRepository, session: Session, ref: str) -> VersionLabel:
    """The active version in words ("v3 saved by …", "shipped version (28c8342)")."""
    saved = saved_version(ref)
    row = repo.active_row(session, saved[0]) if saved is not None else None
    return describe_version(ref, row.author if row is not None else None)


def _apply_gl_rows(
    name: str,
    text: str,
    kinds: list[str] | None,
    methods: list[str] | None,
    accounts: list[str] | None,
) -> tuple[str, list[SpecProblem]]:
    """The YAML with the GL table editor's rows written into ``tables.gl_accounts``."""
    if accounts is None:
        return text, []
    kinds, methods = kinds or [], methods or []
    rows = []
    for kind, method, account in zip(kinds, methods, accounts, strict=False):
        kind, method, account = kind.strip(), method.strip(), account.strip()
        if not (kind or method or account):
            continue  # the empty row for adding one
        rows.append({"transaction_type": kind, "payment_method": method, "gl_account": account})
    try:
        return replace_table_rows(text, f"{name}.yaml (draft)", GL_TABLE, rows), []
    except SpecError as exc:
        return text, exc.problems


def _parse_samples(text: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    if not text.strip():
        return None, None
    try:
        loaded = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        return (
            None,
            f"Sample records: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.",
        )
    if isinstance(loaded, dict):
        loaded = [loaded]
    if not isinstance(loaded, list) or not all(isinstance(r, dict) for r in loaded):
        return None, "Sample records: give a JSON list of objects, one per record."
    return loaded[:MAX_PREVIEW], None


def _gl_rows(text: str, name: str) -> list[dict[str, Any]] | None:
    try:
        document = load_document(text, name).document
    except SpecError:
        return None
    if not isinstance(document, MappingSpec) or GL_TABLE not in document.tables:
        return None
    table = document.tables[GL_TABLE]
    if table.keys != ["transaction_type", "payment_method"] or table.values != ["gl_account"]:
        return None
    return [dict(row) for row in table.rows]


def _edit_page(
    request: Request,
    repo: MappingRepository,
    db: Database,
    name: str,
    *,
    yaml: str | None = None,
    samples: str | None = None,
    problems: list[SpecProblem] | None = None,
    preview: Any = None,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    with db.read() as session:
        info = summary(repo, session, name)
        active = repo.text(session, name)
        # plain values: the read session expires its rows when it ends
        active_label = _version_label(repo, session, active.ref)
        history = [
            {
                "version": row.version,
                "created_at": row.created_at,
                "author": row.author,
                "comment": row.comment,
                "is_active": row.is_active,
                "rolled_back_from": row.rolled_back_from,
            }
            for row in repo.history(session, name)
        ]
    text = yaml if yaml is not None else active.text
    kind = info.get("source")
    if samples is None:
        samples = json.dumps(to_json(sample_records(kind)), indent=2) if kind else ""
    return render(
        request,
        "mapping_edit.html",
        status_code=status_code,
        name=name,
        info=info,
        active=active,
        active_label=active_label,
        yaml_text=text,
        samples=samples,
        gl_rows=_gl_rows(text, name),
        problems=problems or [],
        preview=preview,
        history=history,
        notice=notice,
        error=error,
        functions=reference(),
        recent_offered=kind in RECENT_SOURCES,
    )
