"""What a run keeps: the scope's matches and breaks.

A scope holds about as many matches as sales (a million at the benchmark's scale) and a
few thousand breaks, and a run finds nearly all of them again:

* **matches** are Parquet segments (``recon/match_sets.py``): a full run writes them all
  as one document, an incremental run appends the engine's own difference.
* **breaks** are upserted by the engine's stable id in three bulk statements: new rows,
  rows whose values or state changed (found again after being cleared, reopened), and the
  ones no longer found (cleared: resolved by the run, kept in the history). An
  explanation given by a person stands. Each of these steps writes its event.

Breaks are compared by a digest of their values, never as loaded ORM objects: a flush
of thousands of dirty objects, or reading their JSON back, was most of a daily run.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from ledgerlink.recon import match_sets
from ledgerlink.store.recon_models import ReconBreak, ReconBreakEvent, ReconRun
from ledgerlink.store.types import utcnow

#: Resolutions a later run checks: found again, the break is open again (the receipt was
#: not posted after all). An explanation given by a person stands.
REOPENED_WHEN_FOUND = frozenset({"cleared", "posted_receipt", "reversed_duplicate"})

# -- breaks ---------------------------------------------------------------------------

#: The values a run sets on a break, in the order digested.
_BREAK_VALUES = (
    "type",
    "side",
    "ids",
    "other_side",
    "other_ids",
    "amount_minor",
    "expected_minor",
    "actual_minor",
    "currency",
    "as_of_days",
    "occurred_on",
    "detail",
)


def _digest(values: dict[str, Any]) -> str:
    """What tells a stored break's values from the run's without reading them back."""
    listed = [values[name] for name in _BREAK_VALUES]
    text = json.dumps(listed, default=str, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _found_values(row: dict[str, Any], as_of: date) -> dict[str, Any]:
    age = int(row.get("as_of_days") or 0)
    return {
        "type": str(row["type"]),
        "side": str(row["side"]),
        "ids": [str(i) for i in row["ids"] or []],
        "other_side": str(row.get("other_side") or ""),
        "other_ids": [str(i) for i in row.get("other_ids") or []],
        "amount_minor": int(row["amount_minor"]),
        "expected_minor": _optional_int(row.get("expected_minor")),
        "actual_minor": _optional_int(row.get("actual_minor")),
        "currency": str(row["currency"]),
        "as_of_days": age,
        "occurred_on": as_of - timedelta(days=age),
        "detail": str(row.get("detail") or ""),
    }


def _reopens(
    status: str, resolution: str | None, resolved_at: datetime | None, run: ReconRun
) -> bool:
    """A break resolved by an action that a later run can disprove, found again."""
    return (
        status == "resolved"
        and resolution in REOPENED_WHEN_FOUND
        and (resolved_at is None or resolved_at < run.started_at)
    )


def keep_breaks(
    session: Session, run: ReconRun, breaks: pl.DataFrame, actor: str
) -> dict[str, int]:
    """Upsert the run's ``breaks`` by their stable id; clear those no longer found."""
    scope_id = run.scope_id
    found = {str(row["break_id"])[:80]: row for row in breaks.to_dicts()} if breaks.height else {}
    stored = {
        row.break_id: row
        for row in session.execute(
            select(
                ReconBreak.id,
                ReconBreak.break_id,
                ReconBreak.status,
                ReconBreak.resolution,
                ReconBreak.resolved_at,
                ReconBreak.present,
                ReconBreak.digest,
            ).where(ReconBreak.scope_id == scope_id)
        )
    }
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    reopened = 0
    for break_id, row in found.items():
        values = _found_values(row, run.as_of)
        values["digest"] = _digest(values)
        kept = stored.get(break_id)
        if kept is None:
            inserts.append(
                {
                    "scope_id": scope_id,
                    "break_id": break_id,
                    "status": "open",
                    "first_run_id": run.id,
                    "last_run_id": run.id,
                    "present": True,
                    **values,
                }
            )
            continue
        update_row: dict[str, Any] = {}
        if values["digest"] != kept.digest:
            update_row.update(values)
        if not kept.present:
            update_row["present"] = True
        if _reopens(kept.status, kept.resolution, kept.resolved_at, run):
            update_row.update(status="open", resolution=None, resolved_at=None, resolved_by=None)
            events.append(_event(kept.id, actor, "reopened", f"Found again by run {run.id}", now))
            reopened += 1
        if update_row:
            changed.append({"id": kept.id, "last_run_id": run.id, **update_row})
    cleared = 0
    for break_id, kept in stored.items():
        if break_id in found or not kept.present:
            continue
        gone: dict[str, Any] = {"id": kept.id, "present": False, "last_run_id": run.id}
        if kept.status == "open":
            gone.update(status="resolved", resolution="cleared", resolved_at=now, resolved_by=actor)
            cleared += 1
        changed.append(gone)
        events.append(_event(kept.id, actor, "cleared", f"No longer found by run {run.id}", now))
    # every break still present is seen by this run; the rows above say what else changed
    session.execute(
        update(ReconBreak)
        .where(ReconBreak.scope_id == scope_id, ReconBreak.present.is_(True))
        .values(last_run_id=run.id)
        .execution_options(synchronize_session=False)
    )
    for chunk in _chunks_by_keys(changed):
        session.execute(update(ReconBreak), chunk)
    if inserts:
        session.execute(insert(ReconBreak), inserts)
        new_ids = session.execute(
            select(ReconBreak.id, ReconBreak.break_id, ReconBreak.detail).where(
                ReconBreak.scope_id == scope_id, ReconBreak.first_run_id == run.id
            )
        )
        events.extend(
            _event(pk, actor, "found", f"Found by run {run.id}: {detail}", now)
            for pk, _, detail in new_ids
        )
    if events:
        session.execute(insert(ReconBreakEvent), events)
    open_breaks = session.scalar(
        select(func.count())
        .select_from(ReconBreak)
        .where(
            ReconBreak.scope_id == scope_id,
            ReconBreak.status == "open",
            ReconBreak.present.is_(True),
        )
    )
    return {
        "breaks": len(found),
        "open_breaks": int(open_breaks or 0),
        "new_breaks": len(inserts),
        "cleared_breaks": cleared,
        "reopened_breaks": reopened,
    }


def _event(break_pk: int, actor: str, action: str, note: str, at: datetime) -> dict[str, Any]:
    return {"break_pk": break_pk, "actor": actor, "action": action, "note": note, "at": at}


def _chunks_by_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by the set of columns they set: an ORM bulk UPDATE by primary key
    runs one statement per group."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


def keep_result(
    session: Session,
    run: ReconRun,
    result: Any,
    *,
    actor: str,
    changes: Any = None,
    previous_run_id: int | None = None,
) -> dict[str, int]:
    """Store ``result`` for ``run``; the counts. With ``changes`` (an incremental run's
    difference from ``previous_run_id``'s result), only that difference is written."""
    matches = result.matches
    written = match_sets.keep(
        session, run.scope_id, run.id, matches, changes, previous_run_id=previous_run_id
    )
    counts = keep_breaks(session, run, result.breaks, actor)
    card = matches.filter(pl.col("left_side") == "transactions")
    return {
        "matches": matches.height,
        #: the card transactions matched and what they add up to (the page's summary)
        "matched_transactions": card.height,
        "matched_transactions_minor": int(card.get_column("amount_minor").sum() or 0),
        **counts,
        **written,
    }
