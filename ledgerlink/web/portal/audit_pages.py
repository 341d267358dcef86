"""Reading and verifying the audit chain.

The page shows the latest recorded checks (the scheduled ones included) without running
anything; *Check now* runs an incremental check against the signed checkpoints (cheap,
any viewer); *Re-verify everything* enqueues a full check (administrators, one at a
time, at most once a minute).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ledgerlink.audit_jobs import FullCheckRefused, check_recent, request_full_check
from ledgerlink.identity.principal import Principal
from ledgerlink.identity.roles import Role
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit_checks, audit_log
from ledgerlink.web.deps import Admin, RuntimeDep, Viewer
from ledgerlink.web.portal.rendering import render

router = APIRouter()
PAGE = 50


@router.get("/audit")
def audit_page(
    request: Request,
    principal: Viewer,
    runtime: RuntimeDep,
    action: Annotated[str | None, Query(max_length=100)] = None,
    actor: Annotated[str | None, Query(max_length=254)] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
    verify: bool = False,
) -> Response:
    report = check_recent(runtime, principal.actor) if verify else None
    return _page(
        request, runtime, principal, action=action, actor=actor, before=before, report=report
    )


@router.post("/audit/verify/full")
def start_full_check(request: Request, principal: Admin, runtime: RuntimeDep) -> Response:
    try:
        request_full_check(runtime, principal.actor, datetime.now(UTC))
    except FullCheckRefused as refused:  # the page again, saying why
        found = refused.refusal
        return _page(request, runtime, principal, status_code=found.status, error=found.detail)
    return _page(
        request,
        runtime,
        principal,
        status_code=202,
        notice="Full verification started; reload this page to see its result.",
    )


def _page(
    request: Request,
    runtime: Runtime,
    principal: Principal,
    *,
    action: str | None = None,
    actor: str | None = None,
    before: int | None = None,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    db = runtime.db
    with db.read() as session:
        entries = audit_log.recent_entries(
            session, limit=PAGE, action=action, actor=actor, before_seq=before
        )
    return render(
        request,
        "audit.html",
        status_code=status_code,
        entries=entries,
        report=extra.pop("report", None),
        checks=audit_checks.last_checks(db),
        can_verify_full=principal.can(Role.ADMIN),
        filters={"action": action, "actor": actor},
        next_before=entries[-1].seq if len(entries) == PAGE else None,
        prev_before=None,
        **extra,
    )
