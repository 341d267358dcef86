"""The dashboard: what needs attention, at a glance."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from ledgerlink.identity.principal import Principal
from ledgerlink.payments import views as payment_views
from ledgerlink.store import audit_checks
from ledgerlink.store.models import AuditHead, Connection, User
from ledgerlink.web.portal.rendering import render
from ledgerlink.web.security import viewer

router = APIRouter()


@router.get("/")
def dashboard(request: Request, _: Annotated[Principal, Depends(viewer)]) -> Response:
    runtime = request.app.state.runtime
    with runtime.db.read() as session:
        counts = {
            "users": session.scalar(select(func.count()).select_from(User)),
            "connections": session.scalar(select(func.count()).select_from(Connection)),
            "active_connections": session.scalar(
                select(func.count()).select_from(Connection).where(Connection.is_active)
            ),
            "audit_entries": session.scalar(select(AuditHead.seq).where(AuditHead.id == 1)),
        }
        payments = payment_views.dashboard(session)
    jobs = runtime.jobs.health()
    counts["failed_jobs"] = jobs.failed_last_day
    readiness = {"ok": jobs.ok, "detail": jobs.detail}
    return render(
        request,
        "dashboard.html",
        counts=counts,
        payments=payments,
        jobs=jobs,
        readiness=readiness,
        database=runtime.db.backend,
        audit_broken=audit_checks.last_checks(runtime.db).broken,
    )
