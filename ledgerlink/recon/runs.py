"""A reconciliation run: read the sides, match them, keep what was found.

1. **read**: each side is brought up to date through the connectors (``recon/sides.py``);
   a side that cannot be read is noted and the run goes on with the rows read before.
2. **match**: the stored sides become the engine's frames (``recon/tables.py``) and the
   engine (R2's ``recon/engine``) matches them with the rules spec.
3. **keep**: in one transaction, the run's counts and totals, and what changed in the
   scope's matches and breaks (``recon/keeping.py``). A break a later run no longer finds
   is *cleared* (resolved by the run, kept in the history); one found again after being
   cleared is reopened. An explanation given by a person stands.

The same stored sides give the same matches and the same break ids, so a rerun gives the
same answer.

**Incremental runs.** A run keeps its prepared sides and result in the process (``_KEPT``,
per database and scope; about the size of the sides' frames). The next run of the scope
(not ``full``) reads only the rows stored since (row ids above those it read) and gives them
to the engine's ``reconcile_incremental``, whose difference (matches removed and added)
is all that is written. Anything that makes that unsafe gives a full run instead: a row
read before was changed or removed (re-read rows are compared), a batch or statement line
changed, another run of the scope came between, other rules, or a reversed receipt that was
left out became half of a reversal pair. Either way the stored result is what a full run
stores (``tests/integration/test_recon_incremental_runs.py``).
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ledgerlink import blocking
from ledgerlink.connectors.errors import Misconfigured, UpstreamError
from ledgerlink.identity.principal import Principal
from ledgerlink.recon import frames, keeping, rule_specs, tables
from ledgerlink.recon import sides as side_readers
from ledgerlink.recon.engine import prepare, reconcile, reconcile_incremental, reconcile_prepared
from ledgerlink.recon.frames import SideName, Sides
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.store import audit
from ledgerlink.store.recon_models import (
    ReconRun,
    ReconScope,
)
from ledgerlink.store.types import utcnow

log = structlog.get_logger("ledgerlink.recon.runs")

TRIGGERS = ("cli", "api", "portal", "schedule", "batch_poll", "demo")
#: A run still "running" this long after it started was stopped with its process (a
#: SIGKILL, a restart): runs take seconds to minutes, and the next run of the scope
#: records it as stopped instead of leaving it running on the scope's page for good.
STOPPED_AFTER = timedelta(hours=1)
STOPPED_ERROR = (
    "This run stopped before it finished: the process running it ended (a restart or a "
    "crash). Nothing it found was kept; the runs after it cover the same data"
)


@dataclass(frozen=True)
class Matcher:
    """The engine with its rules: ``match(sides, as_of)`` gives the engine's result
    (``matches`` and ``breaks`` frames, per-side ``totals``).

    With ``prepare``, ``match_prepared`` and ``incremental`` (the engine's ``prepare``,
    ``reconcile_prepared`` and ``reconcile_incremental``), a run that finds only new
    stored rows since the previous run in this process matches just what they touch."""

    spec_version: str
    match: Callable[[Sides, date], Any]
    prepare: Callable[[Sides], Any] | None = None
    match_prepared: Callable[[Any, date], Any] | None = None
    incremental: Callable[[Any, Sides, Any, date], tuple[Any, Any]] | None = None


def default_matcher(db: Any = None) -> Matcher:
    """The matching engine with the active rules: with ``db``, the version an administrator
    saved (``recon/rule_specs.py``), else the shipped spec; labelled with that version."""
    if db is None:
        rules = rule_specs.packaged()
    else:
        with db.read() as session:
            rules = rule_specs.active(session)
    spec = rule_specs.compiled(rules)
    return Matcher(
        spec.version,
        lambda sides, as_of: reconcile(sides, spec, as_of=as_of),
        prepare=lambda sides: prepare(sides, spec),
        match_prepared=lambda prepared, as_of: reconcile_prepared(prepared, spec, as_of=as_of),
        incremental=lambda history, new, previous, as_of: reconcile_incremental(
            history, new, previous, spec, as_of=as_of
        ),
    )


@dataclass
class _Kept:
    """What a run leaves for the next run of the same scope in this process: the
    prepared sides and result, and what tells whether the stored rows are still those."""

    db: weakref.ReferenceType[Any]
    run_id: int
    spec_version: str
    ledger: str
    prepared: Any
    result: Any
    until: dict[SideName, int]
    loaded_at: datetime
    counts: tuple[int, ...]
    taken_back: pl.Series
    dropped_reversed: pl.Series
    batches: pl.DataFrame


#: Per (database, scope): the last run's prepared sides and result. A worker keeps them
#: between the daily run and the runs after each batch poll; a new process (or any doubt
#: about the stored rows) starts with a full run.
_KEPT: dict[tuple[int, int], _Kept] = {}
_KEPT_LOCK = threading.Lock()


def _contract(frame: pl.DataFrame, side: SideName) -> pl.DataFrame:
    return frame.select(list(frames.SCHEMAS[side]))


def _unchanged(kept: pl.DataFrame, again: pl.DataFrame, side: SideName) -> bool:
    """Every row of ``again`` (read again) equals its kept row."""
    if not again.height:
        return True
    key = frames.ID_COLUMN[side]
    if side == "receipts":  # as the engine sees them (tables.receipts_frame)
        again = again.with_columns(
            idempotency_key=pl.when(pl.col("idempotency_key") == "")
            .then(None)
            .otherwise(pl.col("idempotency_key"))
        )
    columns = [c for c in again.columns if c in kept.columns]
    mine = kept.select(columns).join(again.select(key), on=key, how="semi")
    return mine.height == again.height and bool(
        mine.sort(key).equals(again.select(columns).sort(key))
    )


def _full_sides(
    session: Session, scope_id: int, ledger: str
) -> tuple[Sides, dict[SideName, int], datetime, pl.Series]:
    """Every stored row (bounded by the row ids seen first), and the sale ids of the
    reversed receipts left out (``tables.receipts_frame``)."""
    loaded_at = utcnow()
    until = tables.max_row_ids(session)
    stored = tables.read_whole(session, scope_id, until)
    txns, raw = stored["transactions"], stored["receipts"]
    receipts = tables.receipts_frame(raw, txns, ledger)
    dropped = (
        raw.filter(pl.col("reversed"))
        .join(receipts.select("receipt_id"), on="receipt_id", how="anti")
        .get_column("txn_id")
        .drop_nulls()
    )
    sides = Sides(
        transactions=tables.checked("transactions", txns),
        receipts=tables.checked("receipts", receipts),
        batches=tables.checked("batches", stored["batches"]),
        deposits=tables.checked("deposits", stored["deposits"]),
    )
    return sides, until, loaded_at, dropped


def _incremental_sides(
    session: Session, scope_id: int, kept: _Kept, run_id: int
) -> tuple[Sides, dict[SideName, int], datetime, pl.Series, tuple[int, ...]] | str:
    """The rows stored since ``kept``'s run (with the stored row counts they make), or
    why a full run is needed: a row read before changed or went, or another run of the
    scope came between. Rows read again since are compared with those kept; statement
    lines are never rewritten (a statement is imported whole or taken back whole)."""
    previous = session.scalar(
        select(func.max(ReconRun.id)).where(ReconRun.scope_id == scope_id, ReconRun.id != run_id)
    )
    if previous != kept.run_id:
        return f"run {previous} of the scope came after run {kept.run_id}"
    loaded_at = utcnow()
    until = tables.max_row_ids(session)
    if tables.row_counts(session, scope_id, kept.until) != kept.counts:
        return "rows read before were removed or reversed"
    for side in ("transactions", "receipts"):
        again = tables.stored_since(session, side, scope_id, kept.until[side], kept.loaded_at)
        if not _unchanged(getattr(kept.prepared, side), again, side):
            return f"{side} read before changed"
    again_b = tables.stored_since(
        session, "batches", scope_id, kept.until["batches"], kept.loaded_at
    )
    if not _unchanged(kept.batches, again_b, "batches"):
        return "a settlement batch read before changed"
    new_b, new_d, new_t, new_r = (
        tables.read_side(session, side, scope_id, after=kept.until[side], until=until[side])
        for side in ("batches", "deposits", "transactions", "receipts")
    )
    counts = (
        kept.counts[0] + int(new_r.get_column("reversed").sum() or 0),
        kept.counts[1] + new_d.height,
    )
    back = tables.taken_back(new_t)
    # A receipt left out as reversed whose sale PayTrace now took back is half of a
    # reversal pair: it comes back into the books as a new row (as a full run has it).
    returning = kept.dropped_reversed.filter(kept.dropped_reversed.is_in(back.implode()))
    if returning.len():
        again = tables.receipts_of(session, scope_id, returning.to_list(), kept.until["receipts"])
        new_r = pl.concat([again.filter(pl.col("reversed")), new_r])
        kept_dropped = kept.dropped_reversed.filter(~kept.dropped_reversed.is_in(back.implode()))
    else:
        kept_dropped = kept.dropped_reversed
    every_back = pl.concat([kept.taken_back, back])
    receipts = tables.receipts_frame(new_r, new_t, kept.ledger, every_back)
    dropped = (
        new_r.filter(pl.col("reversed"))
        .join(receipts.select("receipt_id"), on="receipt_id", how="anti")
        .get_column("txn_id")
        .drop_nulls()
    )
    new = Sides(
        transactions=tables.checked("transactions", new_t),
        receipts=tables.checked("receipts", receipts),
        batches=tables.checked("batches", new_b),
        deposits=tables.checked("deposits", new_d),
    )
    return new, until, loaded_at, pl.concat([kept_dropped, dropped]), counts


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    scope_id: int
    status: str
    counts: dict[str, int]
    duration_ms: int
    error: str | None
    #: Whether only the rows stored since the previous run were matched (module docstring).
    incremental: bool = False
    #: Why every stored row was matched again, when it was (in words, for the log).
    full_because: str | None = None

    @property
    def message(self) -> str:
        c = self.counts
        text = (
            f"Run {self.run_id}: {c.get('matches', 0)} matches, {c.get('open_breaks', 0)} open "
            f"breaks ({c.get('new_breaks', 0)} new, {c.get('cleared_breaks', 0)} cleared) "
            f"in {self.duration_ms} ms"
        )
        return text + (f". Warning: {self.error}" if self.error else "")


async def read_sides(runtime: Any, scope: ReconScope, *, full: bool) -> list[str]:
    """Bring every side of ``scope`` up to date; returns what could not be read."""
    problems: list[str] = []
    gateway_conn, ledger_conn = side_readers.connections_of(runtime.db, scope)
    try:
        gateway = runtime.gateway_for(gateway_conn)
        try:
            await side_readers.read_paytrace(runtime.db, scope, gateway, full=full)
        finally:
            await gateway.aclose()
    except (UpstreamError, Misconfigured) as exc:
        message = f"PayTrace ({gateway_conn.name}) could not be read: {exc}"
        side_readers.note_error(runtime.db, scope.id, "transactions", message)
        problems.append(message)
    except KeyError as exc:  # a connection saved without a required setting
        message = (
            f"PayTrace ({gateway_conn.name}) could not be read: its setting {exc} is missing; "
            "complete it under Accounting Integration"
        )
        side_readers.note_error(runtime.db, scope.id, "transactions", message)
        problems.append(message)
    try:
        ledger = runtime.ledger_for(ledger_conn)
        try:
            await side_readers.read_ledger(runtime.db, scope, ledger, full=full)
        finally:
            await ledger.aclose()
    except (UpstreamError, Misconfigured) as exc:
        message = f"The ledger ({ledger_conn.name}) could not be read: {exc}"
        side_readers.note_error(runtime.db, scope.id, "receipts", message)
        problems.append(message)
    except KeyError as exc:
        message = (
            f"The ledger ({ledger_conn.name}) could not be read: its setting {exc} is missing; "
            "complete it under Accounting Integration"
        )
        side_readers.note_error(runtime.db, scope.id, "receipts", message)
        problems.append(message)
    return problems


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dicts() if frame.height else []


def _totals(totals: pl.DataFrame) -> dict[str, Any]:
    """The engine's per-side totals as JSON: ``{side: {currency, total_minor,
    matched_minor, unmatched_minor}}`` (``side/currency`` when a side has several)."""
    rows = _rows(totals)
    several = len({r["side"] for r in rows}) < len(rows)
    return {
        (f"{r['side']}/{r['currency']}" if several else str(r["side"])): {
            "currency": r["currency"],
            "total_minor": int(r["total_minor"]),
            "matched_minor": int(r["matched_minor"]),
            "unmatched_minor": int(r["unmatched_minor"]),
        }
        for r in rows
    }


@dataclass(frozen=True)
class _Request:
    """What one run was asked to do (for the step that matches and keeps)."""

    run_id: int
    scope_id: int
    ledger: str
    principal: Principal
    trigger: str
    matcher: Matcher
    as_of: date
    full: bool
    started: float


def _start(
    db: Any, scope_id: int, principal: Principal, trigger: str, matcher: Matcher, as_of: date
) -> tuple[int, ReconScope]:
    with db.transaction() as session:
        scope = session.get(ReconScope, scope_id)
        if scope is None:
            raise ReconRefused(
                "scope", f"There is no reconciliation scope {scope_id}", missing=True
            )
        _record_stopped_runs(session, scope_id, utcnow())
        run = ReconRun(
            scope_id=scope_id,
            trigger=trigger,
            requested_by=principal.actor,
            spec_version=matcher.spec_version,
            as_of=as_of,
            status="running",
            counts={},
            totals={},
        )
        session.add(run)
        session.flush()
        session.expunge(scope)
        return run.id, scope


def _record_stopped_runs(session: Session, scope_id: int, now: datetime) -> None:
    """Runs of the scope left "running" by a process that ended (see STOPPED_AFTER)."""
    session.execute(
        update(ReconRun)
        .where(
            ReconRun.scope_id == scope_id,
            ReconRun.status == "running",
            ReconRun.started_at < now - STOPPED_AFTER,
        )
        .values(status="failed", error=STOPPED_ERROR, finished_at=now)
        .execution_options(synchronize_session=False)
    )


def _kept_for(db: Any, request: _Request) -> _Kept | None:
    """The previous run's state this run may build on (taken out: a run that fails
    leaves nothing to build on)."""
    with _KEPT_LOCK:
        kept = None if request.full else _KEPT.pop((id(db), request.scope_id), None)
    if kept is None or (
        request.matcher.incremental is None
        or kept.db() is not db
        or kept.spec_version != request.matcher.spec_version
        or kept.ledger != request.ledger
    ):
        return None
    return kept


def _match_and_keep(db: Any, request: _Request, problems: list[str]) -> RunOutcome:
    """Match the stored sides (only the rows new since the previous run when it can)
    and keep the result: synchronous, database and polars work, run in a thread."""
    matcher, scope_id, run_id = request.matcher, request.scope_id, request.run_id
    kept = _kept_for(db, request)
    full_because = "asked for" if request.full else "no earlier run in this process to build on"
    with db.read() as session:
        fresh = _incremental_sides(session, scope_id, kept, run_id) if kept is not None else None
        if isinstance(fresh, str):
            full_because, fresh = fresh, None
        if fresh is not None:
            new, until, loaded_at, dropped, stored_counts = fresh
        else:
            sides, until, loaded_at, dropped = _full_sides(session, scope_id, request.ledger)
            stored_counts = tables.row_counts(session, scope_id, until)
    changes = None
    prepared: Any = None
    if kept is not None and fresh is not None and matcher.incremental is not None:
        changes, prepared = matcher.incremental(kept.prepared, new, kept.result, request.as_of)
        result = changes.apply(kept.result)
    elif matcher.prepare is not None and matcher.match_prepared is not None:
        prepared = matcher.prepare(sides)
        result = matcher.match_prepared(prepared, request.as_of)
    else:
        result = matcher.match(sides, request.as_of)
    heights = {
        name: (getattr(prepared, name) if prepared is not None else sides.side(name)).height
        for name in ("transactions", "receipts", "batches", "deposits")
    }
    with db.transaction() as session:
        # One keep per scope at a time: two runs of a scope at once (the portal's after
        # posting a receipt, a worker's after a batch poll) would otherwise both build on
        # the same last match segment and both diff the same breaks. The second waits
        # here, then finds the first's segment and writes a whole base instead. (SQLite's
        # write transactions are serial already; it renders no FOR UPDATE. NO KEY: a run's own
        # row, which references the scope, is inserted meanwhile.)
        session.execute(
            select(ReconScope.id).where(ReconScope.id == scope_id).with_for_update(key_share=True)
        )
        run = session.get(ReconRun, run_id)
        assert run is not None
        counts = keeping.keep_result(
            session,
            run,
            result,
            actor=request.principal.actor,
            changes=changes,
            previous_run_id=kept.run_id if changes is not None and kept else None,
        )
        counts.update({f"{name}_rows": height for name, height in heights.items()})
        run.counts = counts
        run.totals = _totals(result.totals)
        run.status = "finished"
        run.error = "; ".join(problems) or None
        run.finished_at = utcnow()
        run.duration_ms = int((time.monotonic() - request.started) * 1000)
        audit.record(
            session,
            actor=request.principal.actor,
            action="recon.run",
            entity_type="recon_run",
            entity_id=run_id,
            after={
                "scope_id": scope_id,
                "trigger": request.trigger,
                "spec_version": matcher.spec_version,
                "as_of": request.as_of.isoformat(),
                "counts": counts,
            },
        )
        outcome = RunOutcome(
            run_id,
            scope_id,
            "finished",
            counts,
            run.duration_ms,
            run.error,
            incremental=changes is not None,
            full_because=None if changes is not None else full_because,
        )
    if prepared is not None:
        with _KEPT_LOCK:
            _KEPT[(id(db), scope_id)] = _Kept(
                db=weakref.ref(db),
                run_id=run_id,
                spec_version=matcher.spec_version,
                ledger=request.ledger,
                prepared=prepared,
                result=result,
                until=until,
                loaded_at=loaded_at,
                counts=stored_counts,
                taken_back=tables.taken_back(prepared.transactions),
                dropped_reversed=dropped,
                batches=_contract(prepared.batches, "batches"),
            )
    return outcome


def _failed(db: Any, run_id: int, error: Exception, started: float) -> None:
    with db.transaction() as session:
        run = session.get(ReconRun, run_id)
        assert run is not None
        run.status = "failed"
        run.error = str(error)[:2000] or type(error).__name__
        run.finished_at = utcnow()
        run.duration_ms = int((time.monotonic() - started) * 1000)


async def run_scope(
    runtime: Any,
    scope_id: int,
    principal: Principal,
    *,
    trigger: str,
    matcher: Matcher,
    as_of: date | None = None,
    read: bool = True,
    full: bool = False,
) -> RunOutcome:
    """One run of ``scope_id``: read (unless ``read`` is False), match, keep. The
    database and matching work runs in threads: a run over a million rows takes seconds,
    and the portal and the workers' other jobs share this event loop."""
    started = time.monotonic()
    as_of = as_of or utcnow().date()
    db = runtime.db
    run_id, scope = await blocking.in_db_thread(
        lambda: _start(db, scope_id, principal, trigger, matcher, as_of)
    )
    problems = await read_sides(runtime, scope, full=full) if read else []
    request = _Request(
        run_id,
        scope_id,
        str(scope.ledger_connection_id),
        principal,
        trigger,
        matcher,
        as_of,
        full,
        started,
    )
    try:
        outcome = await blocking.in_thread(_match_and_keep, db, request, problems)
    except Exception as exc:
        await blocking.in_db_thread(functools.partial(_failed, db, run_id, exc, started))
        log.exception("recon.run_failed", run_id=run_id, scope_id=scope_id)
        raise
    log.info(
        "recon.run",
        run_id=run_id,
        scope_id=scope_id,
        trigger=trigger,
        incremental=outcome.incremental,
        full_because=outcome.full_because,
        **outcome.counts,
    )
    return outcome
