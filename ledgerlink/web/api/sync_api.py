"""Sync over the API: start a run or a plan, follow its progress, read its records, apply a
plan, retry failed records, cancel, and read or change the sync settings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, StrictBool

from ledgerlink.identity.principal import Principal
from ledgerlink.runtime import Runtime
from ledgerlink.sync import realtime_outbox, realtime_views, runs, views
from ledgerlink.sync.datasets import DataSet
from ledgerlink.sync.run_state import run_state
from ledgerlink.web.api.inputs import BodyId, CleanText, PathId
from ledgerlink.web.api.outputs import ResponseModel
from ledgerlink.web.deps import (
    Admin,
    DatabaseDep,
    Operator,
    ReadSession,
    RuntimeDep,
    Viewer,
    WriteSession,
)
from ledgerlink.web.problems import Problem

router = APIRouter(prefix="/sync", tags=["sync"])


class RunIn(BaseModel):
    connection_id: BodyId
    data_sets: list[DataSet] | None = Field(
        default=None, description="Default: the data sets chosen in the sync settings."
    )
    dry_run: StrictBool = Field(default=False, description="Plan only: record what would change.")
    remap: StrictBool = Field(
        default=False,
        description="Member details only: write every linked customer the member → customer "
        "mapping spec now gives (after a spec change), not only members that changed.",
    )


class SettingsIn(BaseModel):
    data_sets: list[DataSet]
    field_policies: dict[str, str] = Field(default_factory=dict)
    overlap_seconds: int = Field(default=300, strict=True, ge=0, le=86_400)
    realtime: StrictBool | None = Field(
        default=None,
        description="Write member changes to this ledger at once (real-time). Omitted: "
        "unchanged (on by default). Off: only runs and schedules write them.",
    )


# ---- responses: what sync/views.py shows, field for field ------------------------------


class ProgressOut(ResponseModel):
    id: int
    status: str
    done: int
    total: int
    percent: int
    rate: float = Field(description="Records per second.")
    eta_seconds: int | None = Field(description="Seconds left; null when not running.")
    errors: int
    counts: dict[str, int]
    finished: bool
    error: str | None
    outcome: str = Field(
        description='The status in words that agree with the records, e.g. "finished with '
        '3 failed records".'
    )
    tone: str = Field(description='"ok", "warn", "bad" or "" (neutral).')


class RunSummaryOut(ResponseModel):
    id: int
    connection: str
    connection_id: int
    trigger: str
    data_sets: list[str]
    dry_run: bool
    status: str
    counts: dict[str, int]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    requested_by: str
    source_run_id: int | None = Field(description="The run a retry or an applied plan follows.")
    error: str | None
    mapping_versions: dict[str, str] = Field(description="The mapping spec versions it used.")
    remap: bool
    failed_records: int = Field(description="Records that failed (what a retry runs again).")
    outcome: str = Field(description="The status in words that agree with the records.")
    tone: str = Field(description='"ok", "warn", "bad" or "" (neutral).')


class RunOut(RunSummaryOut):
    progress: ProgressOut


class ConflictOut(ResponseModel):
    registry: str
    ledger: str
    winner: str


class FieldChangeOut(ResponseModel):
    field: str
    before: str
    after: str
    side: str
    conflict: ConflictOut | None = Field(
        description="Both sides changed the field since they last agreed."
    )
    first_sync: ConflictOut | None = Field(
        description="The sides differed when first synced (no agreement yet): the policy "
        "chose; not a conflict."
    )


class RecordOut(ResponseModel):
    id: int
    member: str = Field(description="The member number, or the record's own key.")
    member_url: str | None = Field(description="The member's portal page, when it has one.")
    data_set: str
    direction: str
    action: str
    status: str
    fields: list[FieldChangeOut]
    message: str | None
    fix: str | None


class SyncSettingsOut(ResponseModel):
    id: int
    name: str
    kind: str
    data_sets: list[str]
    policies: dict[str, str] = Field(description="Each field's policy.")
    overlap_seconds: int


@router.post("/runs", status_code=202, summary="Start a sync run, or a plan (dry run)")
def start_run(body: RunIn, principal: Operator, runtime: RuntimeDep) -> RunOut:
    with runtime.db.transaction() as session:
        run = runs.start(
            session,
            runtime.jobs,
            principal,
            body.connection_id,
            [d.value for d in body.data_sets] if body.data_sets else None,
            trigger="api",
            dry_run=body.dry_run,
            remap=body.remap,
        )
        run_id = run.id
    with runtime.db.read() as session:
        return RunOut.model_validate(run_state(session, run_id))


@router.get("/runs", summary="Recent sync runs (the sync log)")
def list_runs(
    _: Viewer,
    session: ReadSession,
    status: Annotated[CleanText | None, Query(max_length=32)] = None,
    limit: int = 50,
) -> list[RunSummaryOut]:
    found = views.recent_runs(session, limit=min(max(limit, 1), 500), status=status)
    return [RunSummaryOut.model_validate(run) for run in found]


@router.get("/runs/{run_id}", summary="A run with its progress (done/total, rate, ETA, errors)")
def get_run(run_id: PathId, _: Viewer, session: ReadSession) -> RunOut:
    return RunOut.model_validate(run_state(session, run_id))


@router.get("/runs/{run_id}/records", summary="What a run changed, planned, or failed on")
def get_records(
    run_id: PathId,
    _: Viewer,
    session: ReadSession,
    status: Annotated[CleanText | None, Query(max_length=32)] = None,
) -> list[RecordOut]:
    return [RecordOut.model_validate(r) for r in views.records(session, run_id, status, limit=5000)]


@router.post("/runs/{run_id}/cancel", summary="Stop a run after its current page")
def cancel_run(run_id: PathId, principal: Operator, db: DatabaseDep) -> RunOut:
    with db.transaction() as session:
        runs.request_cancel(session, principal, run_id)
    with db.read() as session:
        return RunOut.model_validate(run_state(session, run_id))


@router.post("/runs/{run_id}/apply", status_code=202, summary="Apply a plan exactly (or re-plan)")
def apply_plan(run_id: PathId, principal: Operator, runtime: RuntimeDep) -> RunOut:
    return _follow_up(runtime, run_id, principal, "plan")


@router.post("/runs/{run_id}/retry", status_code=202, summary="Run the failed records again")
def retry_run(run_id: PathId, principal: Operator, runtime: RuntimeDep) -> RunOut:
    return _follow_up(runtime, run_id, principal, "retry")


def _follow_up(runtime: Runtime, run_id: int, principal: Principal, trigger: str) -> RunOut:
    with runtime.db.transaction() as session:
        new_id = runs.start_follow_up(session, runtime.jobs, principal, run_id, trigger).id
    with runtime.db.read() as session:
        return RunOut.model_validate(run_state(session, new_id))


@router.get("/settings", summary="Sync settings of every ledger connection")
def get_settings(_: Viewer, session: WriteSession) -> list[SyncSettingsOut]:
    # a write session: a connection without settings gets its defaults stored on first read
    return [SyncSettingsOut.model_validate(c) for c in views.connection_settings(session)]


@router.put("/settings/{connection_id}", summary="Change a connection's sync settings")
def put_settings(
    connection_id: PathId, body: SettingsIn, principal: Admin, db: DatabaseDep
) -> SyncSettingsOut:
    try:
        with db.transaction() as session:
            runs.save_settings(
                session,
                principal,
                connection_id,
                data_sets=[d.value for d in body.data_sets],
                policies=body.field_policies,
                overlap_seconds=body.overlap_seconds,
            )
            if body.realtime is not None:
                realtime_outbox.set_outbound(session, principal, connection_id, body.realtime)
    except runs.SyncError as exc:  # here a refusal is invalid input, not a conflict
        raise Problem(422, "Invalid sync settings", str(exc)) from None
    with db.transaction() as session:
        found = next(c for c in views.connection_settings(session) if c["id"] == connection_id)
        return SyncSettingsOut.model_validate(found)


# ---- the live feed (real-time writes) ----------------------------------------------------


class LiveWriteOut(ResponseModel):
    member_id: int
    member_number: str = Field(description="Empty when the member was removed since.")
    member_name: str
    connection_id: int
    connection: str
    direction: str = Field(description="to_ledger (registry → ledger) or to_registry.")
    direction_words: str
    outcome: str = Field(description="written | unchanged | refused | retrying | unlinked")
    outcome_words: str
    detail: str = Field(description="What the ledger said and the fix, for a refusal.")
    changed_at: datetime
    written_at: datetime
    lag_ms: int = Field(description="Milliseconds from the change to its write.")


class LiveWaitingOut(ResponseModel):
    connection_id: int
    connection: str
    members: int = Field(description="Members changed and not yet written to this ledger.")
    oldest: datetime = Field(description="When the oldest of those changes was made.")


class LiveOut(ResponseModel):
    writes: list[LiveWriteOut]
    writes_last_hour: int
    lag_p50_ms: int | None = Field(description="Median change → write lag, last hour.")
    lag_p99_ms: int | None = Field(description="99th percentile change → write lag, last hour.")
    lag_words: str
    waiting: list[LiveWaitingOut]
    waiting_words: str
    realtime: dict[str, bool] = Field(
        description="Connection id → whether member changes are written to it at once."
    )


@router.get("/live", summary="The live feed: recent real-time writes, lag and what waits")
def get_live(
    _: Viewer, session: ReadSession, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> LiveOut:
    feed = realtime_views.live(session, limit=limit)
    return LiveOut(
        writes=[
            LiveWriteOut(
                member_id=r.member_id,
                member_number=r.member_number,
                member_name=r.member_name,
                connection_id=r.connection_id,
                connection=r.connection,
                direction=r.direction,
                direction_words=r.direction_words,
                outcome=r.outcome,
                outcome_words=r.outcome_words,
                detail=r.detail,
                changed_at=r.changed_at,
                written_at=r.written_at,
                lag_ms=r.lag_ms,
            )
            for r in feed.rows
        ],
        writes_last_hour=feed.writes_last_hour,
        lag_p50_ms=feed.p50_ms,
        lag_p99_ms=feed.p99_ms,
        lag_words=feed.lag_words,
        waiting=[
            LiveWaitingOut(
                connection_id=w.connection_id,
                connection=w.connection,
                members=w.members,
                oldest=w.oldest,
            )
            for w in feed.waiting
        ],
        waiting_words=feed.waiting_words,
        realtime={str(c): on for c, on in feed.realtime_on.items()},
    )
