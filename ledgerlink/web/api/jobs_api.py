"""The job queue's state, for dashboards and monitoring."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from ledgerlink.web.deps import RuntimeDep, Viewer

router = APIRouter(tags=["operations"])


@router.get("/jobs/health", summary="Job queue health: workers, backlog, oldest due job")
def jobs_health(_: Viewer, runtime: RuntimeDep) -> dict[str, Any]:
    return asdict(runtime.jobs.health())
