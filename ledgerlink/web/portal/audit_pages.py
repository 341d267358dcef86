"""Reading and verifying the audit chain.

The page lists who changed what and when, each change field by field (before → after,
secrets only ever "changed"), filtered by user, object and date range, a page at a time,
and exports the filtered entries as CSV. It also shows the latest recorded checks of the
chain (the scheduled ones included) without running anything; *Check now* runs an
incremental check against the signed checkpoints (cheap, any viewer); *Re-verify
everything* enqueues a full check (administrators, one at a time, at most once a minute).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from ledgerlink import audit_view
from ledgerlink.audit_jobs import FullCheckRefused, check_recent, request_full_check
from ledgerlink.csv_cells import SafeCsvWriter
from ledgerlink.identity import users
from ledgerlink.identity.principal import Principal
from ledgerlink.identity.roles import Role
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit_checks, audit_search
from ledgerlink.store.db import Database
from ledgerlink.web.deps import Admin, RuntimeDep, Viewer
from ledgerlink.web.portal import audit_filters
from ledgerlink.web.portal.rendering import render

router = APIRouter()
PAGE = 50
EXPORT_HEADER = (
    "Entry",
    "When (UTC)",
    "Who",
    "What",
    "Object type",
    "Object ID",
    "Object",
    "Field",
    "Before",
    "After",
)


@router.get("/audit")
def audit_page(request: Request, principal: Viewer, runtime: RuntimeDep) -> Response:
    wanted = audit_filters.read(request.query_params)
    verify = request.query_params.get("verify", "") not in ("", "0", "false")
    report = check_recent(runtime, principal.actor) if verify else None
    return _page(request, runtime, principal, wanted, report=report)


@router.get("/audit/export.csv")
def audit_export(request: Request, principal: Viewer, runtime: RuntimeDep) -> Response:
    """The entries the page's filters select (every page of them), one row per field
    changed; cells a spreadsheet could run as a formula are neutralised."""
    wanted = audit_filters.read(request.query_params)
    if wanted.errors:  # the page again, naming the bad field, not a file of everything
        return _page(request, runtime, principal, wanted, status_code=422)
    return StreamingResponse(
        _csv_rows(runtime.db, wanted.wanted),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'},
    )


@router.post("/audit/verify/full")
def start_full_check(request: Request, principal: Admin, runtime: RuntimeDep) -> Response:
    wanted = audit_filters.read({})
    try:
        request_full_check(runtime, principal.actor, datetime.now(UTC))
    except FullCheckRefused as refused:  # the page again, saying why
        found = refused.refusal
        return _page(
            request, runtime, principal, wanted, status_code=found.status, error=found.detail
        )
    return _page(
        request,
        runtime,
        principal,
        wanted,
        status_code=202,
        notice="Full verification started; reload this page to see its result.",
    )


def _csv_rows(db: Database, wanted: audit_search.AuditFilter) -> Iterator[str]:
    buffer = io.StringIO()
    writer = SafeCsvWriter(buffer)
    writer.writerow(EXPORT_HEADER)
    with db.read() as session:
        for entry in audit_search.all_matching(session, wanted):
            shown = audit_view.view(entry)
            head = (
                shown.seq,
                shown.at.strftime("%Y-%m-%d %H:%M:%S"),
                shown.actor,
                shown.what,
                shown.object_type_label,
                shown.object_id or "",
                shown.object_name or "",
            )
            for change in shown.changes or (audit_view.FieldChange("", "", ""),):
                writer.writerow((*head, change.field, change.before, change.after))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _page(
    request: Request,
    runtime: Runtime,
    principal: Principal,
    wanted: audit_filters.FilterInput,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    db = runtime.db
    entries: list[audit_view.EntryView] = []
    next_before = prev_before = None
    with db.read() as session:
        if not wanted.errors:
            found = audit_search.page(
                session, wanted.wanted, limit=PAGE, before_seq=wanted.before_seq
            )
            entries = [audit_view.view(entry) for entry in found]
            next_before = found[-1].seq if len(found) == PAGE else None
            if wanted.before_seq is not None and found:
                prev_before = audit_search.newer_page_start(
                    session, wanted.wanted, limit=PAGE, after_seq=found[0].seq
                )
        people = [user.email for user in users.all_users(session)]
    if wanted.errors and status_code == 200:
        status_code = 422
    return render(
        request,
        "audit.html",
        status_code=status_code,
        entries=entries,
        report=extra.pop("report", None),
        checks=audit_checks.last_checks(db),
        can_verify_full=principal.can(Role.ADMIN),
        filters=wanted.typed,
        field_errors=wanted.errors,
        filtered=any(wanted.typed.values()),
        object_types=audit_view.object_types(),
        people=people,
        short=audit_view.short,
        export_query=wanted.query(),
        newest_query=wanted.query() if wanted.before_seq is not None else None,
        next_query=wanted.query(before=next_before) if next_before else None,
        prev_query=wanted.query(before=prev_before) if prev_before else None,
        **extra,
    )
