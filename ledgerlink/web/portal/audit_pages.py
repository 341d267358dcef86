"""Reading and verifying the audit chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from ledgerlink.identity.principal import Principal
from ledgerlink.store import audit
from ledgerlink.store.models import AuditEntry
from ledgerlink.web.portal.rendering import render
from ledgerlink.web.security import viewer

router = APIRouter()
PAGE = 50


@router.get("/audit")
def audit_page(
    request: Request,
    _: Annotated[Principal, Depends(viewer)],
    action: Annotated[str | None, Query(max_length=100)] = None,
    actor: Annotated[str | None, Query(max_length=254)] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
    verify: bool = False,
) -> Response:
    db = request.app.state.runtime.db
    query = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(PAGE)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if before:
        query = query.where(AuditEntry.seq < before)
    with db.read() as session:
        entries = list(session.scalars(query))
    report = audit.verify_all(db) if verify else None
    return render(
        request,
        "audit.html",
        entries=entries,
        report=report,
        filters={"action": action, "actor": actor},
        next_before=entries[-1].seq if len(entries) == PAGE else None,
        prev_before=None,
    )
