"""What the portal, the API and the CLI show of reconciliation (every query lives here).

* :func:`summary`: a scope's latest run — matched count and amount, open breaks by type
  and amount, deposits in transit by age — for a period or all time;
* :func:`break_rows` with :class:`BreakFilter`: the breaks list (type, status, assignee,
  period, text) and :func:`break_detail` with its history and the rows it names;
* :func:`batch_detail`: the drill-down batch → transactions → receipts → statement line;
* :func:`runs`, :func:`statements`, :func:`periods`, :func:`scopes`.

Rows are frozen dataclasses with amounts already formatted (``Money``), so the three
surfaces show the same words and numbers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import polars as pl
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ledgerlink.domain.money import Money
from ledgerlink.recon import match_sets
from ledgerlink.recon.breaks import BreakType
from ledgerlink.recon.periods import bounds
from ledgerlink.store.recon_models import (
    ReconBatch,
    ReconBreak,
    ReconBreakEvent,
    ReconPeriod,
    ReconReceipt,
    ReconRun,
    ReconScope,
    ReconSideState,
    ReconStatement,
    ReconStatementLine,
    ReconTransaction,
)

#: Ages (days) deposits in transit are grouped by: up to 2, 3-5, 6-10, over 10.
TRANSIT_BUCKETS = (
    (0, 2, "0-2 days"),
    (3, 5, "3-5 days"),
    (6, 10, "6-10 days"),
    (11, None, "over 10 days"),
)
STATUSES = ("open", "resolved", "explained")


def money(minor: int | None, currency: str) -> str:
    if minor is None:
        return ""
    return Money(int(minor), currency).format_display()


def label(break_type: str) -> str:
    try:
        return BreakType(break_type).label
    except ValueError:
        return break_type.replace("_", " ")


def fix(break_type: str) -> str:
    try:
        return BreakType(break_type).fix
    except ValueError:
        return ""


@dataclass(frozen=True)
class ScopeRow:
    id: int
    name: str
    gateway_connection_id: int
    ledger_connection_id: int
    currency: str
    open_breaks: int
    last_run_at: str
    sides: dict[str, dict[str, Any]] = field(default_factory=dict)


def scopes(session: Session) -> list[ScopeRow]:
    out = []
    for scope in session.scalars(select(ReconScope).order_by(ReconScope.id)):
        open_breaks = session.scalar(
            select(func.count())
            .select_from(ReconBreak)
            .where(
                ReconBreak.scope_id == scope.id,
                ReconBreak.status == "open",
                ReconBreak.present.is_(True),
            )
        )
        last = session.scalar(
            select(ReconRun.started_at)
            .where(ReconRun.scope_id == scope.id)
            .order_by(ReconRun.id.desc())
            .limit(1)
        )
        sides = {
            s.side: {
                "rows": s.rows,
                "cursor": s.cursor.isoformat() if s.cursor else None,
                "read_at": s.read_at.isoformat() if s.read_at else None,
                "error": s.last_error,
            }
            for s in session.scalars(
                select(ReconSideState).where(ReconSideState.scope_id == scope.id)
            )
        }
        out.append(
            ScopeRow(
                scope.id,
                scope.name,
                scope.gateway_connection_id,
                scope.ledger_connection_id,
                scope.currency,
                int(open_breaks or 0),
                last.isoformat(timespec="seconds") if last else "",
                sides,
            )
        )
    return out


@dataclass(frozen=True)
class RunRow:
    id: int
    trigger: str
    requested_by: str
    spec_version: str
    as_of: str
    status: str
    counts: dict[str, int]
    totals: dict[str, Any]
    started_at: str
    duration_ms: int | None
    error: str | None


def _run_row(run: ReconRun) -> RunRow:
    return RunRow(
        run.id,
        run.trigger,
        run.requested_by,
        run.spec_version,
        run.as_of.isoformat(),
        run.status,
        dict(run.counts or {}),
        dict(run.totals or {}),
        run.started_at.isoformat(timespec="seconds"),
        run.duration_ms,
        run.error,
    )


def runs(session: Session, scope_id: int, *, limit: int = 20) -> list[RunRow]:
    return [
        _run_row(r)
        for r in session.scalars(
            select(ReconRun)
            .where(ReconRun.scope_id == scope_id)
            .order_by(ReconRun.id.desc())
            .limit(limit)
        )
    ]


def latest_run(session: Session, scope_id: int) -> ReconRun | None:
    return session.scalar(
        select(ReconRun)
        .where(ReconRun.scope_id == scope_id, ReconRun.status == "finished")
        .order_by(ReconRun.id.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class TypeTotal:
    type: str
    label: str
    count: int
    amount: str
    amount_minor: int


@dataclass(frozen=True)
class Summary:
    scope_id: int
    scope_name: str
    currency: str
    period: str
    period_status: str
    signed_off_by: str | None
    run: RunRow | None
    matched_count: int
    matched_amount: str
    matched_amount_minor: int
    open_breaks: int
    open_amount: str
    breaks_by_type: list[TypeTotal]
    in_transit: list[tuple[str, int, str]]
    resolved: int
    explained: int


def _period_clause(period: str | None) -> list[Any]:
    if not period:
        return []
    starts, ends = bounds(period)
    return [ReconBreak.occurred_on >= starts, ReconBreak.occurred_on <= ends]


def period_state(session: Session, scope_id: int, period: str | None) -> ReconPeriod | None:
    if not period:
        return None
    return session.scalar(
        select(ReconPeriod).where(ReconPeriod.scope_id == scope_id, ReconPeriod.period == period)
    )


def summary(session: Session, scope: ReconScope, period: str | None = None) -> Summary:
    run = latest_run(session, scope.id)
    matched_count = matched_minor = 0
    if run is not None:
        if "matched_transactions" in run.counts:
            matched_count = run.counts["matched_transactions"]
            matched_minor = run.counts["matched_transactions_minor"]
        else:  # a run stored before the counts were (its matches are the current ones)
            card = match_sets.current(session, scope.id, "transactions")
            matched_count = card.height
            matched_minor = int(card.get_column("amount_minor").sum() or 0)
    present = [
        ReconBreak.scope_id == scope.id,
        ReconBreak.present.is_(True),
        *_period_clause(period),
    ]
    by_type = session.execute(
        select(ReconBreak.type, func.count(), func.coalesce(func.sum(ReconBreak.amount_minor), 0))
        .where(*present, ReconBreak.status == "open")
        .group_by(ReconBreak.type)
        .order_by(ReconBreak.type)
    ).all()
    types = [
        TypeTotal(t, label(t), int(n), money(int(a), scope.currency), int(a)) for t, n, a in by_type
    ]
    ages = session.scalars(
        select(ReconBreak.as_of_days).where(
            *present, ReconBreak.status == "open", ReconBreak.type == "deposit_in_transit"
        )
    ).all()
    transit: list[tuple[str, int, str]] = []
    for low, high, name in TRANSIT_BUCKETS:
        picked = session.scalar(
            select(func.coalesce(func.sum(ReconBreak.amount_minor), 0)).where(
                *present,
                ReconBreak.status == "open",
                ReconBreak.type == "deposit_in_transit",
                # the first bucket also holds an age kept negative by an older run
                # (an item not due yet): its age is 0
                *([ReconBreak.as_of_days >= low] if low > 0 else []),
                *([ReconBreak.as_of_days <= high] if high is not None else []),
            )
        )
        count = sum(1 for a in ages if (a >= low or low == 0) and (high is None or a <= high))
        transit.append((name, count, money(int(picked or 0), scope.currency)))
    closed = session.execute(
        select(ReconBreak.status, func.count())
        .where(ReconBreak.scope_id == scope.id, *_period_clause(period))
        .group_by(ReconBreak.status)
    ).all()
    by_status = {s: int(n) for s, n in closed}
    state = period_state(session, scope.id, period)
    open_minor = sum(t.amount_minor for t in types)
    return Summary(
        scope.id,
        scope.name,
        scope.currency,
        period or "",
        state.status if state is not None else "open",
        state.signed_off_by if state is not None and state.status == "closed" else None,
        _run_row(run) if run is not None else None,
        int(matched_count),
        money(int(matched_minor), scope.currency),
        int(matched_minor),
        sum(t.count for t in types),
        money(open_minor, scope.currency),
        types,
        transit,
        by_status.get("resolved", 0),
        by_status.get("explained", 0),
    )


@dataclass(frozen=True)
class BreakFilter:
    type: str | None = None
    #: open | resolved | explained | all
    status: str = "open"
    assigned_to: str | None = None
    period: str | None = None
    text: str | None = None
    limit: int = 500


@dataclass(frozen=True)
class BreakRow:
    id: int
    break_id: str
    type: str
    label: str
    fix: str
    side: str
    ids: list[str]
    other_side: str
    other_ids: list[str]
    amount: str
    amount_minor: int
    expected: str
    actual: str
    currency: str
    age_days: int
    occurred_on: str
    detail: str
    status: str
    present: bool
    assigned_to: str | None
    resolution: str | None
    resolved_by: str | None
    reason: str | None


def _break_row(b: ReconBreak) -> BreakRow:
    return BreakRow(
        b.id,
        b.break_id,
        b.type,
        label(b.type),
        fix(b.type),
        b.side,
        list(b.ids or []),
        b.other_side,
        list(b.other_ids or []),
        money(b.amount_minor, b.currency),
        b.amount_minor,
        money(b.expected_minor, b.currency),
        money(b.actual_minor, b.currency),
        b.currency,
        max(b.as_of_days, 0),  # days since due: 0 until it is due, never "-1 d"
        b.occurred_on.isoformat(),
        b.detail,
        b.status,
        b.present,
        b.assigned_to,
        b.resolution,
        b.resolved_by,
        b.reason,
    )


def break_rows(session: Session, scope_id: int, filters: BreakFilter) -> list[BreakRow]:
    query = select(ReconBreak).where(
        ReconBreak.scope_id == scope_id, *_period_clause(filters.period)
    )
    if filters.status == "open":
        query = query.where(ReconBreak.status == "open", ReconBreak.present.is_(True))
    elif filters.status in ("resolved", "explained"):
        query = query.where(ReconBreak.status == filters.status)
    if filters.type:
        query = query.where(ReconBreak.type == filters.type)
    if filters.assigned_to:
        query = query.where(ReconBreak.assigned_to == filters.assigned_to.strip().lower())
    rows = [
        _break_row(b)
        for b in session.scalars(
            query.order_by(ReconBreak.occurred_on, ReconBreak.break_id).limit(
                max(1, min(filters.limit, 10_000))
            )
        )
    ]
    if filters.text:
        needle = filters.text.strip().lower()
        rows = [
            r
            for r in rows
            if needle in r.detail.lower()
            or needle in r.break_id.lower()
            or any(needle in i.lower() for i in [*r.ids, *r.other_ids])
        ]
    return rows


@dataclass(frozen=True)
class HistoryRow:
    at: str
    actor: str
    action: str
    note: str


@dataclass(frozen=True)
class BreakDetail:
    row: BreakRow
    history: list[HistoryRow]
    transactions: list[dict[str, Any]]
    receipts: list[dict[str, Any]]
    batches: list[dict[str, Any]]
    deposits: list[dict[str, Any]]


def find_break(session: Session, scope_id: int, break_id: str) -> ReconBreak | None:
    return session.scalar(
        select(ReconBreak).where(ReconBreak.scope_id == scope_id, ReconBreak.break_id == break_id)
    )


def _txn_dict(t: ReconTransaction) -> dict[str, Any]:
    return {
        "txn_id": t.txn_id,
        "kind": t.kind,
        "status": t.status,
        "amount": money(t.amount_minor, t.currency),
        "amount_minor": t.amount_minor,
        "created_on": t.created_on.isoformat(),
        "batch_number": t.batch_number,
        "card_brand": t.card_brand,
        "invoice_number": t.invoice_number,
        "original_txn_id": t.original_txn_id,
    }


def _receipt_dict(r: ReconReceipt) -> dict[str, Any]:
    return {
        "receipt_id": r.receipt_id,
        "kind": r.kind,
        "amount": money(r.amount_minor, r.currency),
        "amount_minor": r.amount_minor,
        "posted_on": r.posted_on.isoformat(),
        "idempotency_key": r.idempotency_key,
        "txn_id": r.txn_id,
        "reversed": r.reversed,
        "customer_id": r.customer_id,
        "reference": r.reference,
    }


def _batch_dict(b: ReconBatch) -> dict[str, Any]:
    return {
        "batch_number": b.batch_number,
        "settled_on": b.settled_on.isoformat(),
        "gross": money(b.gross_minor, b.currency),
        "fees": money(b.fees_minor, b.currency),
        "chargebacks_withheld": money(b.chargebacks_withheld_minor, b.currency),
        "net": money(b.net_minor, b.currency),
        "net_minor": b.net_minor,
        "transaction_count": b.transaction_count,
    }


def _line_dict(line: ReconStatementLine, statement: ReconStatement) -> dict[str, Any]:
    return {
        "line_id": line.line_id,
        "statement_id": statement.id,
        "statement": f"{statement.format.upper()} {statement.account} "
        f"{statement.period_start.isoformat()}-{statement.period_end.isoformat()}",
        "line_no": line.line_no,
        "booked_on": line.booked_on.isoformat(),
        "amount": money(line.amount_minor, line.currency),
        "amount_minor": line.amount_minor,
        "reference": line.reference,
        "description": line.description,
        "bank_ref": line.bank_ref,
    }


def _rows_for(session: Session, scope_id: int, side: str, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    if side == "transactions":
        return [
            _txn_dict(t)
            for t in session.scalars(
                select(ReconTransaction).where(
                    ReconTransaction.scope_id == scope_id, ReconTransaction.txn_id.in_(ids)
                )
            )
        ]
    if side == "receipts":
        return [
            _receipt_dict(r)
            for r in session.scalars(
                select(ReconReceipt).where(
                    ReconReceipt.scope_id == scope_id, ReconReceipt.receipt_id.in_(ids)
                )
            )
        ]
    if side == "batches":
        return [
            _batch_dict(b)
            for b in session.scalars(
                select(ReconBatch).where(
                    ReconBatch.scope_id == scope_id, ReconBatch.batch_number.in_(ids)
                )
            )
        ]
    if side == "deposits":
        return [
            _line_dict(line, statement)
            for line, statement in session.execute(
                select(ReconStatementLine, ReconStatement)
                .join(ReconStatement, ReconStatement.id == ReconStatementLine.statement_id)
                .where(ReconStatement.scope_id == scope_id, ReconStatementLine.line_id.in_(ids))
            ).all()
        ]
    return []


def break_detail(session: Session, scope_id: int, break_id: str) -> BreakDetail | None:
    found = find_break(session, scope_id, break_id)
    if found is None:
        return None
    history = [
        HistoryRow(e.at.isoformat(timespec="seconds"), e.actor, e.action, e.note)
        for e in session.scalars(
            select(ReconBreakEvent)
            .where(ReconBreakEvent.break_pk == found.id)
            .order_by(ReconBreakEvent.id)
        )
    ]
    named: dict[str, list[str]] = defaultdict(list)
    named[found.side].extend(found.ids or [])
    if found.other_side:
        named[found.other_side].extend(found.other_ids or [])
    return BreakDetail(
        _break_row(found),
        history,
        _rows_for(session, scope_id, "transactions", named["transactions"]),
        _rows_for(session, scope_id, "receipts", named["receipts"]),
        _rows_for(session, scope_id, "batches", named["batches"]),
        _rows_for(session, scope_id, "deposits", named["deposits"]),
    )


@dataclass(frozen=True)
class BatchDrill:
    batch: dict[str, Any]
    #: each transaction with the receipts the ledger holds for it
    transactions: list[dict[str, Any]]
    deposits: list[dict[str, Any]]
    breaks: list[BreakRow]


def batches(session: Session, scope_id: int, *, limit: int = 200) -> list[dict[str, Any]]:
    return [
        _batch_dict(b)
        for b in session.scalars(
            select(ReconBatch)
            .where(ReconBatch.scope_id == scope_id)
            .order_by(ReconBatch.settled_on.desc(), ReconBatch.batch_number.desc())
            .limit(limit)
        )
    ]


def batch_detail(session: Session, scope_id: int, batch_number: str) -> BatchDrill | None:
    """Batch → its transactions → each one's receipts → the statement line(s) it was
    deposited in (from the latest run's matches)."""
    batch = session.scalar(
        select(ReconBatch).where(
            ReconBatch.scope_id == scope_id, ReconBatch.batch_number == batch_number
        )
    )
    if batch is None:
        return None
    txns = list(
        session.scalars(
            select(ReconTransaction)
            .where(
                ReconTransaction.scope_id == scope_id,
                ReconTransaction.batch_number == batch_number,
            )
            .order_by(ReconTransaction.txn_id)
        )
    )
    receipts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    txn_ids = [t.txn_id for t in txns]
    for start in range(0, len(txn_ids), 500):
        for r in session.scalars(
            select(ReconReceipt).where(
                ReconReceipt.scope_id == scope_id,
                ReconReceipt.txn_id.in_(txn_ids[start : start + 500]),
            )
        ):
            receipts[r.txn_id or ""].append(_receipt_dict(r))
    transactions = [{**_txn_dict(t), "receipts": receipts.get(t.txn_id, [])} for t in txns]
    line_ids = (
        match_sets.current(session, scope_id, "batches")
        .filter(pl.col("left_ids").list.contains(batch_number))
        .get_column("right_ids")
        .explode()
        .drop_nulls()
        .to_list()
    )
    related = [
        _break_row(b)
        for b in session.scalars(
            select(ReconBreak).where(ReconBreak.scope_id == scope_id, ReconBreak.present.is_(True))
        )
        if batch_number in (b.ids or [])
        or batch_number in (b.other_ids or [])
        or any(t in (b.ids or []) for t in txn_ids)
    ]
    return BatchDrill(
        _batch_dict(batch),
        transactions,
        _rows_for(session, scope_id, "deposits", line_ids),
        related,
    )


@dataclass(frozen=True)
class StatementRow:
    id: int
    format: str
    filename: str
    account: str
    period_start: str
    period_end: str
    lines: int
    imported_by: str
    imported_at: str


def statements(session: Session, scope_id: int) -> list[StatementRow]:
    return [
        StatementRow(
            s.id,
            s.format,
            s.filename,
            s.account,
            s.period_start.isoformat(),
            s.period_end.isoformat(),
            s.line_count,
            s.imported_by,
            s.imported_at.isoformat(timespec="seconds"),
        )
        for s in session.scalars(
            select(ReconStatement)
            .where(ReconStatement.scope_id == scope_id)
            .order_by(ReconStatement.id.desc())
        )
    ]


@dataclass(frozen=True)
class PeriodRow:
    period: str
    status: str
    signed_off_by: str | None
    closed_at: str | None
    reopened_by: str | None
    reopen_reason: str | None


def periods(session: Session, scope_id: int) -> list[PeriodRow]:
    return [
        PeriodRow(
            p.period,
            p.status,
            p.signed_off_by,
            p.closed_at.isoformat(timespec="seconds") if p.closed_at else None,
            p.reopened_by,
            p.reopen_reason,
        )
        for p in session.scalars(
            select(ReconPeriod)
            .where(ReconPeriod.scope_id == scope_id)
            .order_by(ReconPeriod.period.desc())
        )
    ]


def current_period(today: date) -> str:
    return f"{today.year:04d}-{today.month:02d}"


@dataclass(frozen=True)
class DayCash:
    """One day of a period: what PayTrace settled for the scope (net of fees and
    withheld chargebacks) and what the bank statements show deposited (credits)."""

    day: date
    settled_minor: int
    deposited_minor: int


def cash_by_day(session: Session, scope: ReconScope, period: str) -> list[DayCash]:
    """Every day of ``period`` (YYYY-MM): settled and deposited cash in the scope's
    currency, summed per day in SQL (integer minor units on both back-ends)."""
    first, last = bounds(period)
    settled = session.execute(
        select(ReconBatch.settled_on, func.sum(ReconBatch.net_minor))
        .where(
            ReconBatch.scope_id == scope.id,
            ReconBatch.currency == scope.currency,
            ReconBatch.settled_on >= first,
            ReconBatch.settled_on <= last,
        )
        .group_by(ReconBatch.settled_on)
    ).all()
    deposited = session.execute(
        select(ReconStatementLine.booked_on, func.sum(ReconStatementLine.amount_minor))
        .join(ReconStatement, ReconStatement.id == ReconStatementLine.statement_id)
        .where(
            ReconStatement.scope_id == scope.id,
            ReconStatementLine.currency == scope.currency,
            ReconStatementLine.amount_minor > 0,
            ReconStatementLine.booked_on >= first,
            ReconStatementLine.booked_on <= last,
        )
        .group_by(ReconStatementLine.booked_on)
    ).all()
    settled_on = {_as_date(d): int(n or 0) for d, n in settled}
    booked_on = {_as_date(d): int(n or 0) for d, n in deposited}
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [DayCash(d, settled_on.get(d, 0), booked_on.get(d, 0)) for d in days]


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class TransitAge:
    """Open deposits in transit of one age bucket (``TRANSIT_BUCKETS``)."""

    name: str
    count: int
    amount_minor: int


def in_transit_by_age(session: Session, scope: ReconScope, period: str | None) -> list[TransitAge]:
    """The open deposits in transit of the scope's latest run, by age bucket, counted and
    summed in one ``GROUP BY`` (the same rows :func:`summary` counts)."""
    bucket = case(
        *[
            (ReconBreak.as_of_days <= high, index)
            for index, (_, high, _) in enumerate(TRANSIT_BUCKETS)
            if high is not None
        ],
        else_=len(TRANSIT_BUCKETS) - 1,
    ).label("bucket")
    rows = session.execute(
        select(bucket, func.count(), func.coalesce(func.sum(ReconBreak.amount_minor), 0))
        .where(
            ReconBreak.scope_id == scope.id,
            ReconBreak.present.is_(True),
            *_period_clause(period),
            ReconBreak.status == "open",
            ReconBreak.type == "deposit_in_transit",
        )
        .group_by(bucket)
    ).all()
    found = {int(b): (int(n), int(a or 0)) for b, n, a in rows}
    return [
        TransitAge(name, *found.get(index, (0, 0)))
        for index, (_, _, name) in enumerate(TRANSIT_BUCKETS)
    ]
