"""One sync run as the portal and the API follow it: found by id, with its progress."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ledgerlink.store.sync_models import SyncRun
from ledgerlink.sync import views
from ledgerlink.sync.runs import SyncRunNotFound


def find_run(session: Session, run_id: int) -> SyncRun | None:
    return session.get(SyncRun, run_id)


def run_state(session: Session, run_id: int) -> views.RunState:
    """The run's summary with its progress (``SyncRunNotFound`` for an unknown id)."""
    run = find_run(session, run_id)
    if run is None:
        raise SyncRunNotFound(f"there is no sync run {run_id}")
    failed = views.failed_records(session, run_id)
    return {**views.run_summary(run, "", failed), "progress": views.progress(run, failed)}


def progress_of(session: Session, run_id: int) -> views.RunProgress | views.GoneRun:
    """The run's progress; a run that is gone reads as finished."""
    run = find_run(session, run_id)
    if run is None:
        return {"finished": True, "status": "gone"}
    return views.progress(run, views.failed_records(session, run_id))
