"""The job queue's state, for dashboards and monitoring."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from ledgerlink.identity.principal import Principal
from ledgerlink.web.security import viewer

router = APIRouter(tags=["operations"])


@router.get("/jobs/health", summary="Job queue health: workers, backlog, oldest due job")
def jobs_health(request: Request, _: Annotated[Principal, Depends(viewer)]) -> dict[str, Any]:
    return asdict(request.app.state.runtime.jobs.health())
