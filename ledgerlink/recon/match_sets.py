"""A scope's matches, kept as Parquet segments (``recon_match_segments``).

Why not a row per match: a scope holds about as many matches as sales (a million at the
benchmark's scale) and every run finds nearly all of them again. Inserting a million
rows costs seconds on SQLite (the driver binds every value) and more on PostgreSQL;
the same million as one zstd-compressed Parquet document is written in a fraction of a
second and a few megabytes. Matches are read by scope (the portal's drill-down, the
tests), never joined in SQL, so nothing is lost by keeping them as documents.

* a **full run** writes a *base* segment with every match and deletes the earlier
  segments (in the run's transaction);
* an **incremental run** appends a segment with the matches it added and the ids it
  removed (``engine.Changes``), a few thousand rows, unless the scope's segments moved on
  since the run it builds on, or ``COMPACT_AFTER`` segments follow the base: then it
  writes a base from its whole result instead.

``current`` applies the segments in order: the base, then each later segment's removals
and additions. The result is what a full run over the same records stores
(``tests/integration/test_recon_incremental_runs.py``).
"""

from __future__ import annotations

import io
from typing import Any

import polars as pl
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ledgerlink.recon.matching.output import MATCH_SCHEMA
from ledgerlink.store.recon_models import ReconMatchSegment

#: Incremental segments after a base before a run compacts them into a new base: reading
#: the current matches applies every one of them.
COMPACT_AFTER = 24


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()


def _frame(document: bytes, columns: list[str] | None = None) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(document), columns=columns)


def _matches(frame: pl.DataFrame) -> pl.DataFrame:
    """The engine's match columns, in its order and types."""
    return frame.select([pl.col(name).cast(kind) for name, kind in MATCH_SCHEMA.items()])


def _segments_since_base(session: Session, scope_id: int) -> list[tuple[int, int, bool]]:
    """(id, run_id, base) of the segments that make the current matches, oldest first."""
    base_id = session.scalar(
        select(func.max(ReconMatchSegment.id)).where(
            ReconMatchSegment.scope_id == scope_id, ReconMatchSegment.base.is_(True)
        )
    )
    if base_id is None:
        return []
    rows = session.execute(
        select(ReconMatchSegment.id, ReconMatchSegment.run_id, ReconMatchSegment.base)
        .where(ReconMatchSegment.scope_id == scope_id, ReconMatchSegment.id >= base_id)
        .order_by(ReconMatchSegment.id)
    )
    return [(int(i), int(r), bool(b)) for i, r, b in rows]


def write_base(session: Session, scope_id: int, run_id: int, matches: pl.DataFrame) -> None:
    """Every match of ``run_id``'s result; the earlier segments go."""
    session.execute(delete(ReconMatchSegment).where(ReconMatchSegment.scope_id == scope_id))
    session.add(
        ReconMatchSegment(
            scope_id=scope_id,
            run_id=run_id,
            base=True,
            added_count=matches.height,
            removed_count=0,
            added=_parquet(_matches(matches)),
            removed=_parquet(pl.DataFrame(schema={"match_id": pl.String()})),
        )
    )


def keep(
    session: Session,
    scope_id: int,
    run_id: int,
    matches: pl.DataFrame,
    changes: Any = None,
    previous_run_id: int | None = None,
) -> dict[str, int]:
    """Store ``run_id``'s matches: ``matches`` is its whole result; ``changes`` (with the
    run they build on) its difference from ``previous_run_id``'s. Returns what was written:
    ``matches_added``/``matches_removed`` for an appended segment, ``matches_rebased`` when
    every match was written."""
    if changes is not None and previous_run_id is not None:
        segments = _segments_since_base(session, scope_id)
        if segments and segments[-1][1] == previous_run_id and len(segments) <= COMPACT_AFTER:
            removed = changes.removed_match_ids.cast(pl.String).to_frame("match_id")
            session.add(
                ReconMatchSegment(
                    scope_id=scope_id,
                    run_id=run_id,
                    base=False,
                    added_count=changes.added_matches.height,
                    removed_count=removed.height,
                    added=_parquet(_matches(changes.added_matches)),
                    removed=_parquet(removed),
                )
            )
            return {
                "matches_added": changes.added_matches.height,
                "matches_removed": removed.height,
            }
    write_base(session, scope_id, run_id, matches)
    return {"matches_rebased": matches.height}


def current(session: Session, scope_id: int, left_side: str | None = None) -> pl.DataFrame:
    """The scope's matches now (only those whose left side is ``left_side`` if given),
    each with the rule and spec version that made it; an empty frame before any run."""
    found = _matches(pl.DataFrame(schema=MATCH_SCHEMA))
    segments = _segments_since_base(session, scope_id)
    if not segments:
        return found
    documents = {
        int(i): (added, removed)
        for i, added, removed in session.execute(
            select(ReconMatchSegment.id, ReconMatchSegment.added, ReconMatchSegment.removed).where(
                ReconMatchSegment.id.in_([s[0] for s in segments])
            )
        )
    }
    for segment_id, _, is_base in segments:
        added_doc, removed_doc = documents[segment_id]
        added = _frame(added_doc)
        if left_side is not None:
            added = added.filter(pl.col("left_side") == left_side)
        if not is_base:
            removed = _frame(removed_doc).get_column("match_id")
            found = found.filter(~pl.col("match_id").is_in(removed.implode()))
        found = pl.concat([found, _matches(added)])
    return found.sort("match_id")
