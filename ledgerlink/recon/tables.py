"""The stored sides of a scope as the engine's frames (``recon/frames.py``).

Rows go from the database to polars without ORM objects or SQLAlchemy rows (a scope
holds millions of rows and the daily run must stay in seconds): as Arrow columns through
ADBC on PostgreSQL, as the driver's tuples on SQLite; cast to the contract's types;
the frames are checked (``frames.check``) before the engine sees them.
"""

from __future__ import annotations

from typing import Any

import adbc_driver_postgresql.dbapi as adbc_postgresql
import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledgerlink.recon import frames, sqlite_arrow
from ledgerlink.recon.frames import SideName
from ledgerlink.store.recon_models import (
    ReconBatch,
    ReconReceipt,
    ReconStatement,
    ReconStatementLine,
    ReconTransaction,
)

#: Per side: the SQL (``{scope}`` is the scope's integer id) and its columns, in order.
#: No ORDER BY: SQLite would walk the unique index and fetch each row by it (and pick
#: that index over a better one for an IN list); ``_as_contract`` sorts in polars.
#: ``{scoped}`` is ``scope_id``, or ``+scope_id`` when a row-id range or list picks the
#: rows: the unary plus keeps the planner off the scope's index (SQLite scanned every
#: row of the scope for twenty thousand new ones); valid SQL on PostgreSQL too.
_QUERIES: dict[SideName, str] = {
    "transactions": (
        "SELECT txn_id, kind, status, amount_minor, currency, created_on, batch_number, "
        "card_brand, original_txn_id FROM recon_transactions WHERE {scoped} = {scope}"
        "{since}"
    ),
    "receipts": (
        "SELECT receipt_id, idempotency_key, txn_id, kind, amount_minor, currency, posted_on, "
        "reversed, customer_id, reference FROM recon_receipts WHERE {scoped} = {scope}"
        "{since}"
    ),
    "batches": (
        "SELECT batch_number, settled_on, gross_minor, fees_minor, chargebacks_withheld_minor, "
        "net_minor, currency, transaction_count FROM recon_batches WHERE {scoped} = {scope}"
        "{since}"
    ),
    "deposits": (
        "SELECT l.line_id, l.statement_id, l.booked_on, l.amount_minor, l.currency, "
        "l.reference, l.bank_ref FROM recon_statement_lines l JOIN recon_statements s "
        "ON s.id = l.statement_id WHERE s.scope_id = {scope}{since}"
    ),
}
_STORED: dict[SideName, list[str]] = {
    "transactions": list(frames.SCHEMAS["transactions"]),
    "receipts": [c for c in frames.SCHEMAS["receipts"] if c != "ledger"],
    "batches": list(frames.SCHEMAS["batches"]),
    "deposits": list(frames.SCHEMAS["deposits"]),
}
#: The stored id (primary key) column of each side's table, for reading only new rows.
ROW_ID: dict[SideName, str] = {
    "transactions": "id",
    "receipts": "id",
    "batches": "id",
    "deposits": "l.id",
}


def _fetched(session: Session, sql: str) -> pl.DataFrame:
    """The rows of ``sql`` as a frame (column types as the driver gives them).

    On PostgreSQL through ADBC (Apache Arrow's driver: binary COPY into Arrow columns,
    no Python tuples; a million rows through psycopg's cursor cost seconds and a
    gigabyte). The ADBC connection is a second one to the same database: the caller
    bounds what it reads by row ids taken in its own session, so a row written since is
    not read. On SQLite through the session's own driver (the few rows of a daily run);
    whole sides go through ``read_whole`` and ``recon/sqlite_arrow.py``."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        url = connection.engine.url.set(drivername="postgresql")
        with (
            adbc_postgresql.connect(url.render_as_string(hide_password=False)) as adbc,
            adbc.cursor() as cursor,
        ):
            cursor.execute(sql)
            return pl.DataFrame(cursor.fetch_arrow())
    raw: Any = connection.connection.dbapi_connection
    cursor = raw.cursor()
    try:
        cursor.execute(sql)
        names = [d[0].split(".")[-1] for d in cursor.description]
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)


def _as_contract(frame: pl.DataFrame, side: SideName) -> pl.DataFrame:
    """``frame`` with the contract's types: SQLite gives dates as ISO text and booleans
    as 0/1; an empty result has no types."""
    schema = frames.SCHEMAS[side]
    names = _STORED[side]
    if not frame.height:
        return pl.DataFrame(schema={n: schema[n] for n in names})
    casts = []
    for name in names:
        want = schema[name]
        if isinstance(want, pl.Date) and frame.schema[name] == pl.String:
            casts.append(pl.col(name).str.to_date("%Y-%m-%d"))
        else:
            casts.append(pl.col(name).cast(want))
    return frame.select(casts).sort(frames.ID_COLUMN[side])


def _read(
    session: Session,
    side: SideName,
    scope_id: int,
    after: int | None,
    until: int | None = None,
) -> pl.DataFrame:
    """The stored rows of one side (row id above ``after`` and up to ``until`` if given),
    in id order of the side (the engine sorts what it needs)."""
    since = "" if after is None else f" AND {ROW_ID[side]} > {int(after)}"
    since += "" if until is None else f" AND {ROW_ID[side]} <= {int(until)}"
    scoped = "scope_id" if after is None else "+scope_id"
    sql = _QUERIES[side].format(scoped=scoped, scope=int(scope_id), since=since)
    return _as_contract(_fetched(session, sql), side)


#: Sides a full read of which goes to child processes on SQLite (a million rows each).
_BIG: tuple[SideName, ...] = ("transactions", "receipts")


def read_whole(
    session: Session, scope_id: int, until: dict[SideName, int]
) -> dict[SideName, pl.DataFrame]:
    """Every stored row of each side up to the row ids ``until``, as read (unchecked).
    On SQLite the two big sides are read side by side as Arrow in child processes
    (``recon/sqlite_arrow.py`` says why)."""
    found: dict[SideName, pl.DataFrame] = {}
    connection = session.connection()
    database = connection.engine.url.database
    if connection.dialect.name == "sqlite" and database and database != ":memory:":
        queries: dict[str, str] = {
            side: _QUERIES[side].format(
                scoped="scope_id",
                scope=int(scope_id),
                since=f" AND {ROW_ID[side]} <= {int(until[side])}",
            )
            for side in _BIG
        }
        read = sqlite_arrow.read(database, queries)
        for side in _BIG:
            found[side] = _as_contract(read[side], side)
    for side in frames.SIDES:
        if side not in found:
            found[side] = _read(session, side, scope_id, None, until[side])
    return found


def read_side(
    session: Session,
    side: SideName,
    scope_id: int,
    *,
    after: int | None = None,
    until: int | None = None,
) -> pl.DataFrame:
    """One side's stored rows as read (receipts without their ledger), unchecked."""
    return _read(session, side, scope_id, after, until)


def receipts_of(session: Session, scope_id: int, txn_ids: list[str], until: int) -> pl.DataFrame:
    """The stored receipts (up to row id ``until``) of the sales ``txn_ids``, as read."""
    r = ReconReceipt
    ids: list[int] = []
    for start in range(0, len(txn_ids), 500):
        ids += session.scalars(
            select(r.id).where(
                r.scope_id == scope_id,
                r.txn_id.in_(txn_ids[start : start + 500]),
                r.id <= until,
            )
        ).all()
    return _read_ids(session, "receipts", scope_id, ids)


def _read_ids(session: Session, side: SideName, scope_id: int, ids: list[int]) -> pl.DataFrame:
    """The stored rows of ``side`` with the row ids ``ids``, as read."""
    parts = []
    for start in range(0, len(ids), 500):
        listed = ", ".join(str(int(i)) for i in ids[start : start + 500])
        since = f" AND id IN ({listed})"
        sql = _QUERIES[side].format(scoped="+scope_id", scope=int(scope_id), since=since)
        parts.append(_as_contract(_fetched(session, sql), side))
    return pl.concat(parts) if parts else _as_contract(pl.DataFrame(), side)


def max_row_ids(session: Session) -> dict[SideName, int]:
    """A row id per side above which every row is new: the table's largest (every read
    also filters by scope, so another scope's rows change nothing, and ``max(id)`` on
    the primary key is one lookup where the scope's own maximum is a scan)."""
    return {
        "transactions": int(session.scalar(select(func.max(ReconTransaction.id))) or 0),
        "receipts": int(session.scalar(select(func.max(ReconReceipt.id))) or 0),
        "batches": int(session.scalar(select(func.max(ReconBatch.id))) or 0),
        "deposits": int(session.scalar(select(func.max(ReconStatementLine.id))) or 0),
    }


def taken_back(transactions: pl.DataFrame) -> pl.Series:
    """Sale ids PayTrace took back (refunded, voided, charged back): a reversed receipt
    naming one is half of a reversal pair and stays in the books."""
    return pl.concat(
        [
            transactions.filter(pl.col("kind") != "sale").get_column("original_txn_id"),
            transactions.filter(pl.col("status") == "voided").get_column("txn_id"),
        ]
    ).drop_nulls()


def receipts_frame(
    receipts: pl.DataFrame,
    transactions: pl.DataFrame,
    ledger: str,
    back: pl.Series | None = None,
) -> pl.DataFrame:
    """The stored receipts the engine sees: a receipt reversed in the ledger (SBC deletes
    it) while PayTrace took nothing back is out of the books; what is left of the sale's
    receipts is what reconciles. One whose sale was voided, refunded or charged back
    stays: it is half of a reversal pair."""
    if back is None:
        back = taken_back(transactions)
    listed = back.implode()
    kept = receipts.filter(
        ~pl.col("reversed")
        | (
            pl.col("txn_id").is_not_null()
            & (pl.col("txn_id") != "")
            & pl.col("txn_id").is_in(listed).fill_null(False)
        )
    )
    return kept.with_columns(
        ledger=pl.lit(ledger, dtype=pl.String),
        idempotency_key=pl.when(pl.col("idempotency_key") == "")
        .then(None)
        .otherwise(pl.col("idempotency_key")),
    ).select(list(frames.SCHEMAS["receipts"]))


#: The sides a reader upserts (stamping ``read_at``), by their model.
_UPSERTED: dict[SideName, Any] = {
    "transactions": ReconTransaction,
    "receipts": ReconReceipt,
    "batches": ReconBatch,
}


def stored_since(
    session: Session, side: SideName, scope_id: int, until: int, since: Any
) -> pl.DataFrame:
    """Rows of ``side`` (transactions, receipts or batches) up to row id ``until`` written
    again at or after ``since`` (a reader's upsert stamps ``read_at``, and so does marking
    a receipt reversed), as read."""
    model = _UPSERTED[side]
    ids = session.scalars(
        select(model.id).where(
            model.scope_id == scope_id, model.read_at >= since, model.id <= until
        )
    ).all()
    return _read_ids(session, side, scope_id, list(ids))


def row_counts(session: Session, scope_id: int, until: dict[SideName, int]) -> tuple[int, ...]:
    """Reversed receipts and statement lines up to ``until``, each counted on an index:
    what tells a run that rows it read before were reversed or taken back without a new
    read stamp (every reader's write stamps ``read_at``; this is the check that does not
    rely on it). Transactions and receipts are never deleted."""
    r, line = ReconReceipt, ReconStatementLine
    reversed_ = session.scalar(
        select(func.count()).where(
            r.scope_id == scope_id, r.reversed.is_(True), r.id <= until["receipts"]
        )
    )
    lines = session.scalar(
        select(func.count())
        .select_from(line)
        .join(ReconStatement, ReconStatement.id == line.statement_id)
        .where(ReconStatement.scope_id == scope_id, line.id <= until["deposits"])
    )
    return int(reversed_ or 0), int(lines or 0)


def checked(side: SideName, frame: pl.DataFrame) -> pl.DataFrame:
    if not frame.height:
        return frames.empty(side)
    return frames.check(side, frame)
