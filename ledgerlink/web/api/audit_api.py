"""Reading and verifying the audit chain.

Verification checks the chain against its signed checkpoints (``store/audit_checks.py``):
``GET /audit/verify`` is an incremental check any viewer may run (it reads at most
``INCREMENTAL_BUDGET`` entries, usually a handful); a full re-verification from the first
entry is an administrator's ``POST /audit/verify/full``, run as a job, one at a time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ledgerlink.audit_jobs import check_recent, request_full_check
from ledgerlink.store import audit_checks, audit_log
from ledgerlink.store.audit_models import AuditCheckState
from ledgerlink.web.api.inputs import INT64_MAX, CleanText
from ledgerlink.web.deps import Admin, ReadSession, RuntimeDep, Viewer
from ledgerlink.web.problems import PROBLEM_JSON

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


class AuditCheckOut(BaseModel):
    """One check of the chain against its signed checkpoints."""

    kind: str
    ok: bool | None
    complete: bool
    #: Entries 1..entries are verified; head_hash is the hash of entry ``entries``.
    entries: int
    head_hash: str | None
    head_seq: int
    rows_read: int
    #: The signed checkpoint the check started from (null: the first entry).
    anchor_seq: int | None
    problem: str | None
    first_bad_seq: int | None
    checked_at: datetime | None
    checked_by: str | None


class AuditChecksOut(BaseModel):
    incremental: AuditCheckOut | None
    full: AuditCheckOut | None
    full_running: bool


class FullCheckStarted(BaseModel):
    job_id: int
    detail: str


@router.get("/audit", summary="Audit entries, newest first")
def list_entries(
    _: Viewer,
    session: ReadSession,
    action: Annotated[CleanText | None, Query(max_length=100)] = None,
    entity_type: Annotated[CleanText | None, Query(max_length=64)] = None,
    before_seq: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditEntryOut]:
    entries = audit_log.recent_entries(
        session, limit=limit, action=action, entity_type=entity_type, before_seq=before_seq
    )
    return [AuditEntryOut.model_validate(e, from_attributes=True) for e in entries]


@router.get(
    "/audit/verify",
    summary="Check the chain against its signed checkpoints (entries written since the last)",
)
def verify_chain(principal: Viewer, runtime: RuntimeDep) -> AuditCheckOut:
    result = check_recent(runtime, principal.actor)
    return AuditCheckOut(
        kind=result.kind,
        ok=result.ok,
        complete=result.complete,
        entries=result.entries,
        head_hash=result.head_hash,
        head_seq=result.head_seq,
        rows_read=result.rows_read,
        anchor_seq=result.anchor_seq,
        problem=result.problem,
        first_bad_seq=result.first_bad_seq,
        checked_at=result.checked_at,
        checked_by=result.checked_by,
    )


@router.get("/audit/checks", summary="The latest incremental and full checks, without running one")
def latest_checks(_: Viewer, runtime: RuntimeDep) -> AuditChecksOut:
    last = audit_checks.last_checks(runtime.db)
    return AuditChecksOut(
        incremental=_out(last.incremental),
        full=_out(last.full),
        full_running=last.full_running,
    )


_REFUSED = {
    "content": {PROBLEM_JSON: {}},
    "description": "A full verification is running, or finished less than a minute ago.",
}


@router.post(
    "/audit/verify/full",
    status_code=202,
    summary="Re-verify the whole chain from the first entry (administrators; one at a time)",
    responses={409: _REFUSED, 429: _REFUSED},
)
def start_full_check(principal: Admin, runtime: RuntimeDep) -> FullCheckStarted:
    job_id = request_full_check(runtime, principal.actor, datetime.now(UTC))
    return FullCheckStarted(
        job_id=job_id,
        detail="Full verification started; its result appears at /api/v1/audit/checks.",
    )


def _out(row: AuditCheckState | None) -> AuditCheckOut | None:
    return None if row is None else AuditCheckOut.model_validate(row, from_attributes=True)
