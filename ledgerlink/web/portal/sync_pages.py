"""Synchronisation in the portal: Sync Settings (data sets, field policies), Sync Now and
Plan, a run's live progress (server-sent events), its records, CSV export, cancel, retry
failed records and apply a plan. Viewers read; operators run; administrators configure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from ledgerlink.identity.principal import Principal
from ledgerlink.runtime import Runtime
from ledgerlink.store.db import Database
from ledgerlink.sync import realtime_outbox, realtime_views, runs, schedules, views
from ledgerlink.sync.datasets import FIELD_LABELS, FIELDS, DataSet, Policy
from ledgerlink.sync.run_state import find_run, progress_of
from ledgerlink.web.deps import (
    Admin,
    DatabaseDep,
    Operator,
    ReadSession,
    RuntimeDep,
    Viewer,
    WriteSession,
)
from ledgerlink.web.portal import page_charts
from ledgerlink.web.portal.rendering import render, render_error

router = APIRouter()
POLICY_LABELS = {
    Policy.REGISTRY_WINS.value: "member registry wins",
    Policy.LEDGER_WINS.value: "ledger wins",
    Policy.NEWEST_WINS.value: "newest change wins",
}


@dataclass(frozen=True)
class ScheduleForm:
    """A schedule form sent back with what was typed and what to fix (by field; ``""``:
    the form as a whole)."""

    connection_id: int
    values: dict[str, str]
    errors: dict[str, str]


@dataclass(frozen=True)
class SettingsForm:
    """A sync settings form sent back with what was chosen and what to fix."""

    connection_id: int
    data_sets: list[str]
    policies: dict[str, str]
    overlap_seconds: str
    errors: dict[str, str]
    realtime: bool = True


@router.get("/sync")
def sync_page(request: Request, _: Viewer, session: WriteSession, notice: str = "") -> Response:
    # a write session: a connection without settings gets its defaults stored on first view
    return _sync_page(request, session, notice=notice)


def _sync_page(
    request: Request,
    session: Session,
    *,
    notice: str = "",
    schedule_form: ScheduleForm | None = None,
    settings_form: SettingsForm | None = None,
    problem: str = "",
    status_code: int = 200,
) -> Response:
    connections = views.connection_settings(session)
    recent = views.recent_runs(session)
    planned = views.schedules_of(session)
    chart = page_charts.sync_chart(views.runs_by_day(session))
    return render(
        request,
        "sync.html",
        status_code=status_code,
        live=realtime_views.live(session),
        chart=chart,
        connections=connections,
        runs=recent,
        data_sets=list(DataSet),
        fields=FIELDS,
        field_labels=FIELD_LABELS,
        policies=POLICY_LABELS,
        schedules=planned,
        weekdays=schedules.WEEKDAYS,
        notice=notice,
        schedule_form=schedule_form,
        settings_form=settings_form,
        problem=problem,
    )


@router.post("/sync/settings")
async def save_settings(request: Request, principal: Admin, db: DatabaseDep) -> Response:
    form = await request.form()
    raw_id = str(form.get("connection_id") or "")
    if not raw_id.isdigit():
        return render_error(request, 422, "Sync settings were not saved: no ledger connection")
    connection_id = int(raw_id)
    policies = {f: str(form.get(f"policy_{f}")) for f in FIELDS if form.get(f"policy_{f}")}
    data_sets = [str(v) for v in form.getlist("data_sets")]
    overlap = str(form.get("overlap_seconds") or "300").strip()
    realtime = bool(form.get("realtime"))
    typed = SettingsForm(connection_id, data_sets, policies, overlap, {}, realtime)
    try:
        if not overlap.isdigit():
            raise runs.SettingsInvalid(
                "overlap_seconds",
                f"overlap {overlap!r}: give a whole number of seconds, 0 to 86400 (300 is a "
                "safe default)",
            )
        await run_in_threadpool(
            _save_settings,
            db,
            principal,
            connection_id,
            data_sets,
            policies,
            int(overlap),
            realtime,
        )
    except runs.SyncError as exc:
        # The Sync page again, the error beside the field and what was chosen still there.
        field = exc.field if isinstance(exc, runs.SettingsInvalid) else ""
        sent_back = replace(typed, errors={field: f"Not saved: {exc}"})

        def page() -> Response:
            with db.transaction() as session:
                return _sync_page(request, session, settings_form=sent_back, status_code=422)

        return await run_in_threadpool(page)
    return RedirectResponse("/sync?notice=Sync+settings+saved", 303)


def _save_settings(
    db: Database,
    principal: Principal,
    connection_id: int,
    data_sets: list[str],
    policies: dict[str, str],
    overlap_seconds: int,
    realtime: bool = True,
) -> None:
    with db.transaction() as session:
        runs.save_settings(
            session,
            principal,
            connection_id,
            data_sets=data_sets,
            policies=policies,
            overlap_seconds=overlap_seconds,
        )
        realtime_outbox.set_outbound(session, principal, connection_id, realtime)


@router.get("/sync/live")
def live_feed(request: Request, _: Viewer, session: ReadSession) -> Response:
    """The live feed alone: the Sync page refreshes it every few seconds."""
    return render(request, "_live_feed.html", live=realtime_views.live(session))


SCHEDULE_FIELDS = ("kind", "at", "weekday", "cron", "timezone")


@router.post("/sync/schedules")
async def add_schedule(request: Request, principal: Admin, db: DatabaseDep) -> Response:
    form = await request.form()
    values = {name: str(form.get(name) or "") for name in SCHEDULE_FIELDS}
    values["timezone"] = values["timezone"].strip() or "UTC"
    data_sets = [str(v) for v in form.getlist("data_sets")] or None
    raw_id = str(form.get("connection_id") or "")
    if not raw_id.isdigit():
        return render_error(request, 422, "The schedule was not added: no ledger connection")
    connection_id = int(raw_id)

    def add() -> None:
        with db.transaction() as session:
            schedules.add(
                session,
                principal,
                connection_id,
                kind=values["kind"],
                at=values["at"],
                weekday=values["weekday"],
                cron=values["cron"],
                timezone=values["timezone"],
                data_sets=data_sets,
            )

    try:
        await run_in_threadpool(add)
    except runs.SyncError as exc:
        # The Sync page again, the error beside the field and what was typed still there.
        field = exc.field if isinstance(exc, schedules.ScheduleInvalid) else ""
        sent_back = ScheduleForm(connection_id, values, {field: f"Not added: {exc}"})

        def page() -> Response:
            with db.transaction() as session:
                return _sync_page(request, session, schedule_form=sent_back, status_code=422)

        return await run_in_threadpool(page)
    return RedirectResponse("/sync?notice=Schedule+added", 303)


@router.post("/sync/schedules/{schedule_id}/remove")
def remove_schedule(
    request: Request, schedule_id: int, principal: Admin, db: DatabaseDep
) -> Response:
    try:
        with db.transaction() as session:
            schedules.remove(session, principal, schedule_id)
    except runs.SyncError as exc:  # the only refusal: no such schedule
        return render_error(request, 404, str(exc))
    return RedirectResponse("/sync?notice=Schedule+removed", 303)


@router.post("/sync/run")
def run_now(
    request: Request,
    principal: Operator,
    runtime: RuntimeDep,
    session: WriteSession,
    connection_id: Annotated[int, Form()],
    dry_run: Annotated[str, Form()] = "",
    remap: Annotated[str, Form()] = "",
) -> Response:
    try:
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
    except runs.SyncError as exc:  # e.g. a run of the same data sets is still going
        return _sync_page(request, session, problem=f"Not started: {exc}.", status_code=409)
    run_id = run.id
    return RedirectResponse(f"/sync/runs/{run_id}", 303)


@router.get("/sync/runs/{run_id}")
def run_page(
    request: Request, run_id: int, _: Viewer, session: ReadSession, status: str = ""
) -> Response:
    run = find_run(session, run_id)
    if run is None:
        return render_error(request, 404, "There is no such sync run.")
    failed = views.failed_records(session, run_id)
    summary = views.run_summary(run, "", failed)
    state = views.progress(run, failed)
    found = views.records(session, run_id, status or None)
    return render(
        request,
        "sync_run.html",
        run=summary,
        progress=state,
        records=found,
        status=status,
        data_set_labels={d.value: d.label for d in DataSet},
    )


@router.get("/sync/runs/{run_id}/events")
async def run_events(request: Request, run_id: int, _: Viewer, db: DatabaseDep) -> Response:
    """Progress as server-sent events, every half second until the run ends (each read in
    the thread pool)."""

    def read() -> views.RunProgress | views.GoneRun:
        with db.read() as session:
            return progress_of(session, run_id)

    async def stream() -> AsyncIterator[dict[str, str]]:
        while True:
            state = await run_in_threadpool(read)
            yield {"event": "progress", "data": json.dumps(state)}
            if state["finished"] or await request.is_disconnected():
                return
            await asyncio.sleep(0.5)

    return EventSourceResponse(stream())


@router.get("/sync/runs/{run_id}/records.csv")
def run_records_csv(run_id: int, _: Viewer, db: DatabaseDep, status: str = "") -> Response:
    def rows() -> Iterator[str]:
        with db.read() as session:
            yield from views.records_csv(session, run_id, status or None)

    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="sync-run-{run_id}.csv"'},
    )


@router.post("/sync/runs/{run_id}/cancel")
def cancel(run_id: int, principal: Operator, session: WriteSession) -> Response:
    runs.request_cancel(session, principal, run_id)
    return RedirectResponse(f"/sync/runs/{run_id}", 303)


@router.post("/sync/runs/{run_id}/retry")
def retry_failed(run_id: int, principal: Operator, runtime: RuntimeDep) -> Response:
    return _follow_up(runtime, run_id, principal, "retry")


@router.post("/sync/runs/{run_id}/apply")
def apply_plan(run_id: int, principal: Operator, runtime: RuntimeDep) -> Response:
    return _follow_up(runtime, run_id, principal, "plan")


def _follow_up(runtime: Runtime, run_id: int, principal: Principal, trigger: str) -> Response:
    with runtime.db.transaction() as session:
        new_id = runs.start_follow_up(session, runtime.jobs, principal, run_id, trigger).id
    return RedirectResponse(f"/sync/runs/{new_id}", 303)
