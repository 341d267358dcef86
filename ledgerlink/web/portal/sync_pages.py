"""Synchronisation in the portal: Sync Settings (data sets, field policies), Sync Now and
Plan, a run's live progress (server-sent events), its records, CSV export, cancel, retry
failed records and apply a plan. Viewers read; operators run; administrators configure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sse_starlette.sse import EventSourceResponse

from ledgerlink.identity.principal import Principal
from ledgerlink.store.sync_models import SyncRun
from ledgerlink.sync import runs, schedules, views
from ledgerlink.sync.datasets import FIELD_LABELS, FIELDS, DataSet, Policy
from ledgerlink.web.portal.rendering import render, render_error
from ledgerlink.web.security import admin, operator, viewer

router = APIRouter()
POLICY_LABELS = {
    Policy.REGISTRY_WINS.value: "member registry wins",
    Policy.LEDGER_WINS.value: "ledger wins",
    Policy.NEWEST_WINS.value: "newest change wins",
}


@router.get("/sync")
def sync_page(
    request: Request, _: Annotated[Principal, Depends(viewer)], notice: str = ""
) -> Response:
    with request.app.state.db.transaction() as session:
        connections = views.connection_settings(session)
        recent = views.recent_runs(session)
        planned = views.schedules_of(session)
    return render(
        request,
        "sync.html",
        connections=connections,
        runs=recent,
        data_sets=list(DataSet),
        fields=FIELDS,
        field_labels=FIELD_LABELS,
        policies=POLICY_LABELS,
        schedules=planned,
        weekdays=schedules.WEEKDAYS,
        notice=notice,
    )


@router.post("/sync/settings")
async def save_settings(
    request: Request, principal: Annotated[Principal, Depends(admin)]
) -> Response:
    form = await request.form()
    try:
        connection_id = int(str(form.get("connection_id") or "0"))
        policies = {f: str(form.get(f"policy_{f}")) for f in FIELDS if form.get(f"policy_{f}")}
        with request.app.state.db.transaction() as session:
            runs.save_settings(
                session,
                principal,
                connection_id,
                data_sets=[str(v) for v in form.getlist("data_sets")],
                policies=policies,
                overlap_seconds=int(str(form.get("overlap_seconds") or "300")),
            )
    except (runs.SyncError, ValueError) as exc:
        return render_error(request, 422, f"Sync settings were not saved: {exc}")
    return RedirectResponse("/sync?notice=Sync+settings+saved", 303)


@router.post("/sync/schedules")
async def add_schedule(
    request: Request, principal: Annotated[Principal, Depends(admin)]
) -> Response:
    form = await request.form()
    try:
        with request.app.state.db.transaction() as session:
            schedules.add(
                session,
                principal,
                int(str(form.get("connection_id") or "0")),
                kind=str(form.get("kind") or ""),
                at=str(form.get("at") or ""),
                weekday=str(form.get("weekday") or ""),
                cron=str(form.get("cron") or ""),
                timezone=str(form.get("timezone") or "UTC").strip(),
                data_sets=[str(v) for v in form.getlist("data_sets")] or None,
            )
    except (runs.SyncError, ValueError) as exc:
        return render_error(request, 422, f"The schedule was not added: {exc}")
    return RedirectResponse("/sync?notice=Schedule+added", 303)


@router.post("/sync/schedules/{schedule_id}/remove")
def remove_schedule(
    request: Request, schedule_id: int, principal: Annotated[Principal, Depends(admin)]
) -> Response:
    try:
        with request.app.state.db.transaction() as session:
            schedules.remove(session, principal, schedule_id)
    except runs.SyncError as exc:
        return render_error(request, 404, str(exc))
    return RedirectResponse("/sync?notice=Schedule+removed", 303)


@router.post("/sync/run")
def run_now(
    request: Request,
    principal: Annotated[Principal, Depends(operator)],
    connection_id: Annotated[int, Form()],
    dry_run: Annotated[str, Form()] = "",
    remap: Annotated[str, Form()] = "",
) -> Response:
    runtime = request.app.state.runtime
    try:
        with runtime.db.transaction() as session:
            run = runs.start(
                session,
                runtime.jobs,
                principal,
                connection_id,
                None,
                trigger="manual",
                dry_run=bool(dry_run),
                remap=bool(remap),
            )
            run_id = run.id
    except runs.SyncError as exc:
        return render_error(request, 409, str(exc))
    return RedirectResponse(f"/sync/runs/{run_id}", 303)


@router.get("/sync/runs/{run_id}")
def run_page(
    request: Request, run_id: int, _: Annotated[Principal, Depends(viewer)], status: str = ""
) -> Response:
    with request.app.state.db.read() as session:
        run = session.get(SyncRun, run_id)
        if run is None:
            return render_error(request, 404, "There is no such sync run.")
        summary = views.run_summary(run, "")
        state = views.progress(run)
        found = views.records(session, run_id, status or None)
    return render(
        request, "sync_run.html", run=summary, progress=state, records=found, status=status
    )


@router.get("/sync/runs/{run_id}/events")
async def run_events(
    request: Request, run_id: int, _: Annotated[Principal, Depends(viewer)]
) -> Response:
    """Progress as server-sent events, every half second until the run ends."""
    db = request.app.state.db

    async def stream() -> AsyncIterator[dict[str, str]]:
        while True:
            with db.read() as session:
                run = session.get(SyncRun, run_id)
                state = (
                    views.progress(run) if run is not None else {"finished": True, "status": "gone"}
                )
            yield {"event": "progress", "data": json.dumps(state)}
            if state["finished"] or await request.is_disconnected():
                return
            await asyncio.sleep(0.5)

    return EventSourceResponse(stream())


@router.get("/sync/runs/{run_id}/records.csv")
def run_records_csv(
    request: Request, run_id: int, _: Annotated[Principal, Depends(viewer)], status: str = ""
) -> Response:
    db = request.app.state.db

    def rows() -> Iterator[str]:
        with db.read() as session:
            yield from views.records_csv(session, run_id, status or None)

    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="sync-run-{run_id}.csv"'},
    )


@router.post("/sync/runs/{run_id}/cancel")
def cancel(
    request: Request, run_id: int, principal: Annotated[Principal, Depends(operator)]
) -> Response:
    try:
        with request.app.state.db.transaction() as session:
            runs.request_cancel(session, principal, run_id)
    except runs.SyncError as exc:
        return render_error(request, 409, str(exc))
    return RedirectResponse(f"/sync/runs/{run_id}", 303)


@router.post("/sync/runs/{run_id}/retry")
def retry_failed(
    request: Request, run_id: int, principal: Annotated[Principal, Depends(operator)]
) -> Response:
    return _follow_up(request, run_id, principal, "retry")


@router.post("/sync/runs/{run_id}/apply")
def apply_plan(
    request: Request, run_id: int, principal: Annotated[Principal, Depends(operator)]
) -> Response:
    return _follow_up(request, run_id, principal, "plan")


def _follow_up(request: Request, run_id: int, principal: Principal, trigger: str) -> Response:
    runtime = request.app.state.runtime
    try:
        with runtime.db.transaction() as session:
            new_id = runs.start_follow_up(session, runtime.jobs, principal, run_id, trigger).id
    except runs.SyncError as exc:
        return render_error(request, 409, str(exc))
    return RedirectResponse(f"/sync/runs/{new_id}", 303)
