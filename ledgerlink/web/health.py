"""Liveness, readiness and metrics endpoints.

``/healthz`` says the process is up (for restarts); ``/readyz`` says it can do its job
(database answers, schema current, job queue reachable) so a load balancer can route to
it. Both are public and disclose nothing sensitive. ``/metrics`` needs a signed-in caller
(a viewer API token for Prometheus).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ledgerlink.store.migrate import pending_revisions
from ledgerlink.web.deps import EmbeddedRunnerDep, RuntimeDep, viewer
from ledgerlink.web.problems import problem_responses

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database and job queue usable",
    responses={503: {"description": "Not ready", "content": {"application/json": {}}}},
)
def readyz(runtime: RuntimeDep, runner: EmbeddedRunnerDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    ready = True
    try:
        runtime.db.ping()
        pending = pending_revisions(runtime.db)
        checks["database"] = {"ok": not pending, "backend": runtime.db.backend}
        if pending:
            checks["database"]["detail"] = "schema is behind: run `ledgerlink migrate`"
            ready = False
    except Exception as exc:  # any failure means "not ready", with the reason
        checks["database"] = {"ok": False, "detail": type(exc).__name__}
        ready = False
    if checks["database"]["ok"]:
        health = runtime.jobs.health()
        checks["jobs"] = {
            "ok": health.ok,
            "backend": health.backend,
            "live_workers": health.live_workers,
            "queued": health.queued,
        }
        if runner is not None and not runner.is_alive():
            checks["jobs"].update(ok=False, detail="the embedded job runner has stopped")
        ready = ready and checks["jobs"]["ok"]
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    dependencies=[Depends(viewer)],
    response_class=PlainTextResponse,
    responses=problem_responses(401, 403),
)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
