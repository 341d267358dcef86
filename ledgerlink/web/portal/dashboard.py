"""The dashboard: what needs attention, at a glance."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ledgerlink import overview
from ledgerlink.payments import pair_health
from ledgerlink.store import audit_checks
from ledgerlink.web.deps import RuntimeDep, Viewer
from ledgerlink.web.portal import page_charts, tour_pages
from ledgerlink.web.portal.rendering import render

router = APIRouter()


@router.get("/")
def dashboard(request: Request, principal: Viewer, runtime: RuntimeDep) -> Response:
    with runtime.db.read() as session:
        counts = overview.counts(session)
        payments = overview.payment_figures(session)
        health = overview.upstream_health(session)
        pairs = pair_health.pair_health(session)
        mail = overview.mail_health(session)
        per_day = overview.payments_by_day(session)
        lags = overview.lag_by_day(session)
        tour = tour_pages.dashboard_panel(session, principal)
    jobs = runtime.jobs.health()
    counts["failed_jobs"] = jobs.failed_last_day
    readiness = {"ok": jobs.ok, "detail": jobs.detail}
    charts = [
        *page_charts.payment_charts(per_day),
        page_charts.outcome_chart(per_day),
        page_charts.lag_chart(lags),
    ]
    return render(
        request,
        "dashboard.html",
        charts=charts,
        tour=tour,
        counts=counts,
        payments=payments,
        health=health,
        pairs=pairs,
        mail=mail,
        jobs=jobs,
        readiness=readiness,
        database=runtime.db.backend,
        audit_broken=audit_checks.last_checks(runtime.db).broken,
    )
