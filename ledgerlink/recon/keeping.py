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
from datetime import date, datetime
from typing import Any, cast

import polars as pl
from sqlalchemy import Table, func, select, update
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


def _found_frame(breaks: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """The run's breaks as the values stored, with the digest of those values."""
    ids = pl.List(pl.String())
    found = breaks.select(
        break_id=pl.col("break_id").cast(pl.String).str.slice(0, 80),
        type=pl.col("type").cast(pl.String),
        side=pl.col("side").cast(pl.String),
        ids=pl.col("ids").cast(ids).fill_null([]),
        other_side=pl.col("other_side").cast(pl.String).fill_null(""),
        other_ids=pl.col("other_ids").cast(ids).fill_null([]),
        amount_minor=pl.col("amount_minor").cast(pl.Int64),
        expected_minor=pl.col("expected_minor").cast(pl.Int64),
        actual_minor=pl.col("actual_minor").cast(pl.Int64),
        currency=pl.col("currency").cast(pl.String),
        as_of_days=pl.col("as_of_days").cast(pl.Int64).fill_null(0),
        detail=pl.col("detail").cast(pl.String).fill_null(""),
    ).with_columns(
        occurred_on=pl.lit(as_of, dtype=pl.Date) - pl.duration(days=pl.col("as_of_days"))
    )
    canonical = found.select(pl.struct(list(_BREAK_VALUES)).struct.json_encode()).to_series()
    digests = [hashlib.sha256(text.encode()).hexdigest() for text in canonical]
    return found.with_columns(digest=pl.Series(digests, dtype=pl.String))


#: Core tables for the bulk inserts: the ORM's bulk path spent most of a first run's
#: keeping on 20,000 breaks and their events (Core executes them as multi-row VALUES).
_BREAKS = cast(Table, ReconBreak.__table__)
_EVENTS = cast(Table, ReconBreakEvent.__table__)

_STORED_SCHEMA = {
    "id": pl.Int64(),
    "break_id": pl.String(),
    "status": pl.String(),
    "resolution": pl.String(),
    "present": pl.Boolean(),
    "stored_digest": pl.String(),
}


def _stored_frame(session: Session, scope_id: int) -> pl.DataFrame:
    """The scope's stored breaks: their state and digest, not their values (plain
    columns: no JSON nor timestamps for SQLAlchemy to process per row)."""
    rows = session.execute(
        select(
            ReconBreak.id,
            ReconBreak.break_id,
            ReconBreak.status,
            ReconBreak.resolution,
            ReconBreak.present,
            ReconBreak.digest,
        ).where(ReconBreak.scope_id == scope_id)
    ).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=_STORED_SCHEMA, orient="row")


def _resolved_at(session: Session, ids: list[int]) -> dict[int, datetime | None]:
    """When the breaks ``ids`` were resolved (the few a run may reopen)."""
    found: dict[int, datetime | None] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(ReconBreak.id, ReconBreak.resolved_at).where(
                ReconBreak.id.in_(ids[start : start + 500])
            )
        )
        found.update({int(pk): at for pk, at in rows})
    return found


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
    """Upsert the run's ``breaks`` by their stable id; clear those no longer found.
    Only the breaks that are new, changed, found again or gone are touched one by one."""
    scope_id = run.scope_id
    found = _found_frame(breaks, run.as_of).unique("break_id", keep="first", maintain_order=True)
    stored = _stored_frame(session, scope_id)
    joined = found.join(stored, on="break_id", how="left")
    now = utcnow()
    values = [*_BREAK_VALUES, "digest"]
    inserts = [
        {
            "scope_id": scope_id,
            "break_id": row["break_id"],
            "status": "open",
            "first_run_id": run.id,
            "last_run_id": run.id,
            "present": True,
            **{name: row[name] for name in values},
        }
        for row in joined.filter(pl.col("id").is_null()).to_dicts()
    ]
    maybe = joined.filter(
        pl.col("id").is_not_null()
        & (
            (pl.col("digest") != pl.col("stored_digest"))
            | ~pl.col("present")
            | (pl.col("status") == "resolved")
        )
    )
    changed: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    reopened = 0
    candidates = maybe.to_dicts()
    resolved_at = _resolved_at(session, [r["id"] for r in candidates if r["status"] == "resolved"])
    for row in candidates:
        update_row: dict[str, Any] = {}
        if row["digest"] != row["stored_digest"]:
            update_row.update({name: row[name] for name in values})
        if not row["present"]:
            update_row["present"] = True
        if _reopens(row["status"], row["resolution"], resolved_at.get(row["id"]), run):
            update_row.update(status="open", resolution=None, resolved_at=None, resolved_by=None)
            events.append(_event(row["id"], actor, "reopened", f"Found again by run {run.id}", now))
            reopened += 1
        if update_row:
            changed.append({"id": row["id"], "last_run_id": run.id, **update_row})
    cleared = 0
    gone_rows = stored.filter(
        pl.col("present") & ~pl.col("break_id").is_in(found.get_column("break_id").implode())
    )
    for row in gone_rows.select("id", "status").to_dicts():
        gone: dict[str, Any] = {"id": row["id"], "present": False, "last_run_id": run.id}
        if row["status"] == "open":
            gone.update(status="resolved", resolution="cleared", resolved_at=now, resolved_by=actor)
            cleared += 1
        changed.append(gone)
        events.append(_event(row["id"], actor, "cleared", f"No longer found by run {run.id}", now))
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
        session.execute(_BREAKS.insert(), inserts)
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
        session.execute(_EVENTS.insert(), events)
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
        "breaks": found.height,
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
