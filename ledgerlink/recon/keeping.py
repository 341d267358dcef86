"""What a run keeps: the scope's matches and breaks, written as differences.

A scope holds about as many matches as sales (a million at the benchmark's scale) and a
few thousand breaks, and a run finds nearly all of them again. So nothing is rewritten
that did not change:

* **matches** belong to the scope. A full run compares what it found with the stored
  matches (by match id and content) and deletes the gone, inserts the new; an incremental
  run is handed the engine's own difference (``engine.Changes``). Rows go through the
  driver in bulk (``COPY`` on PostgreSQL, one ``executemany`` on SQLite): ORM objects or
  SQLAlchemy's per-row JSON processing for a million of them took most of a run.
* **breaks** are upserted by the engine's stable id in three bulk statements: new rows,
  rows whose values or state changed (found again after being cleared, reopened), and the
  ones no longer found (cleared: resolved by the run, kept in the history). An
  explanation given by a person stands. Each of these steps writes its event.

Both are compared as values (polars frames and tuples), never as loaded ORM objects.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from ledgerlink.store.recon_models import ReconBreak, ReconBreakEvent, ReconRun
from ledgerlink.store.types import utcnow

#: Resolutions a later run checks: found again, the break is open again (the receipt was
#: not posted after all). An explanation given by a person stands.
REOPENED_WHEN_FOUND = frozenset({"cleared", "posted_receipt", "reversed_duplicate"})

_MATCH_COLUMNS = (
    "scope_id",
    "run_id",
    "match_id",
    "rule",
    "spec_version",
    "left_side",
    "left_ids",
    "right_side",
    "right_ids",
    "amount_minor",
    "currency",
)
#: What makes two matches with the same id the same match: a new rules version makes its
#: matches anew, so each names the version that made it.
_MATCH_CONTENT = (
    "match_id",
    "rule",
    "spec_version",
    "left_ids",
    "right_ids",
    "amount_minor",
    "currency",
)


def _json_list(column: str) -> pl.Expr:
    """A list of ids as JSON text (what the JSON column stores), encoded by polars."""
    ids = pl.col(column).fill_null([]).list.eval(pl.element().cast(pl.String))
    encoded = pl.struct(ids.alias("v")).struct.json_encode()
    return encoded.str.slice(5, encoded.str.len_chars() - 6)  # {"v":[...]} -> [...]


def _encoded_matches(matches: pl.DataFrame, scope_id: int, run_id: int) -> pl.DataFrame:
    """The engine's matches as stored rows, in ``_MATCH_COLUMNS`` order."""
    return matches.select(
        scope_id=pl.lit(scope_id, dtype=pl.Int64),
        run_id=pl.lit(run_id, dtype=pl.Int64),
        match_id=pl.col("match_id").cast(pl.String).str.slice(0, 80),
        rule=pl.col("rule").cast(pl.String).str.slice(0, 100),
        spec_version=pl.col("spec_version").cast(pl.String).str.slice(0, 160),
        left_side=pl.col("left_side").cast(pl.String),
        left_ids=_json_list("left_ids"),
        right_side=pl.col("right_side").cast(pl.String),
        right_ids=_json_list("right_ids"),
        amount_minor=pl.col("amount_minor").cast(pl.Int64),
        currency=pl.col("currency").cast(pl.String),
    )


def _raw(session: Session) -> tuple[Any, str]:
    connection = session.connection()
    return connection.connection.dbapi_connection, connection.dialect.name


def _insert_matches(session: Session, rows: pl.DataFrame) -> None:
    if not rows.height:
        return
    raw, dialect = _raw(session)
    columns = ", ".join(_MATCH_COLUMNS)
    cursor = raw.cursor()
    try:
        if dialect == "postgresql":
            with cursor.copy(f"COPY recon_matches ({columns}) FROM STDIN") as copy:
                for row in rows.iter_rows():
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in _MATCH_COLUMNS)
            cursor.executemany(
                f"INSERT INTO recon_matches ({columns}) VALUES ({marks})",  # noqa: S608
                rows.iter_rows(),
            )
    finally:
        cursor.close()


def _delete_matches(session: Session, scope_id: int, match_ids: list[str]) -> None:
    if not match_ids:
        return
    raw, dialect = _raw(session)
    cursor = raw.cursor()
    try:
        if dialect == "postgresql":
            cursor.execute(
                "DELETE FROM recon_matches WHERE scope_id = %s AND match_id = ANY(%s)",
                (scope_id, match_ids),
            )
        else:
            cursor.execute(
                "DELETE FROM recon_matches WHERE scope_id = ? AND match_id IN "
                "(SELECT value FROM json_each(?))",
                (scope_id, json.dumps(match_ids)),
            )
    finally:
        cursor.close()


def _stored_matches(session: Session, scope_id: int) -> pl.DataFrame:
    """The scope's stored matches (content columns only), ids re-encoded as polars
    encodes them: stored JSON may come from elsewhere (spaces, JSONB's own text)."""
    raw, dialect = _raw(session)
    text = "::text" if dialect == "postgresql" else ""
    cursor = raw.cursor()
    try:
        columns = f"match_id, rule, spec_version, left_ids{text}, right_ids{text}, amount_minor"
        sql = f"SELECT {columns}, currency FROM recon_matches WHERE scope_id = %d"  # noqa: S608
        cursor.execute(sql % int(scope_id))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    schema = {
        "match_id": pl.String(),
        "rule": pl.String(),
        "spec_version": pl.String(),
        "left_ids": pl.String(),
        "right_ids": pl.String(),
        "amount_minor": pl.Int64(),
        "currency": pl.String(),
    }
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    ids = pl.List(pl.String())
    return frame.with_columns(
        pl.col("left_ids").str.json_decode(ids),
        pl.col("right_ids").str.json_decode(ids),
    ).with_columns(left_ids=_json_list("left_ids"), right_ids=_json_list("right_ids"))


def keep_matches(
    session: Session,
    scope_id: int,
    run_id: int,
    matches: pl.DataFrame,
    changes: Any = None,
) -> dict[str, int]:
    """Make the scope's stored matches those of ``matches`` (the run's whole result), or
    apply ``changes`` (an incremental run's difference). Returns what was written."""
    if changes is not None:
        removed = changes.removed_match_ids.cast(pl.String).str.slice(0, 80).to_list()
        added = _encoded_matches(changes.added_matches, scope_id, run_id)
    else:
        found = _encoded_matches(matches, scope_id, run_id)
        stored = _stored_matches(session, scope_id)
        content = list(_MATCH_CONTENT)
        added = found.join(stored, on=content, how="anti", nulls_equal=True)
        gone = stored.join(found.select(content), on=content, how="anti", nulls_equal=True)
        removed = gone.get_column("match_id").to_list()
    _delete_matches(session, scope_id, removed)
    _insert_matches(session, added)
    return {"matches_removed": len(removed), "matches_added": added.height}


# -- breaks ---------------------------------------------------------------------------

#: The values a run sets on a break, in the order compared.
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
    columns = [getattr(ReconBreak, name) for name in _BREAK_VALUES]
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
                *columns,
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
        if tuple(values.values()) != tuple(getattr(kept, name) for name in _BREAK_VALUES):
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
) -> dict[str, int]:
    """Store ``result`` for ``run``: matches and breaks as differences; the counts.
    With ``changes`` (an incremental run's), the matches written are the engine's own
    difference instead of one computed against the stored rows."""
    written = keep_matches(session, run.scope_id, run.id, result.matches, changes)
    counts = keep_breaks(session, run, result.breaks, actor)
    return {"matches": result.matches.height, **counts, **written}
