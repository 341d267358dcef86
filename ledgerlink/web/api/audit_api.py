"""Reading and verifying the audit chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from ledgerlink.identity.principal import Principal
from ledgerlink.store import audit
from ledgerlink.store.models import AuditEntry
from ledgerlink.web.security import viewer

router = APIRouter(tags=["audit"])


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    hash: str


@router.get("/audit", summary="Audit entries, newest first")
def list_entries(
    request: Request,
    _: Annotated[Principal, Depends(viewer)],
    action: Annotated[str | None, Query(max_length=100)] = None,
    entity_type: Annotated[str | None, Query(max_length=64)] = None,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditEntryOut]:
    query = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
    if action:
        query = query.where(AuditEntry.action == action)
    if entity_type:
        query = query.where(AuditEntry.entity_type == entity_type)
    if before_seq:
        query = query.where(AuditEntry.seq < before_seq)
    with request.app.state.db.read() as session:
        return [
            AuditEntryOut.model_validate(e, from_attributes=True) for e in session.scalars(query)
        ]


@router.get("/audit/verify", summary="Check the hash chain end to end")
def verify_chain(request: Request, _: Annotated[Principal, Depends(viewer)]) -> dict[str, Any]:
    report = audit.verify_all(request.app.state.db)
    return {
        "ok": report.ok,
        "entries": report.entries,
        "head_hash": report.head_hash,
        "problem": report.problem,
        "first_bad_seq": report.first_bad_seq,
    }
