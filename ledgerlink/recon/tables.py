"""The stored sides of a scope as the engine's frames (``recon/frames.py``).

Rows go from the database to polars column by column, with the contract's names and
types; the frames are checked (``frames.check``) before the engine sees them.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.recon import frames
from ledgerlink.recon.frames import SideName, Sides
from ledgerlink.store.recon_models import (
    ReconBatch,
    ReconReceipt,
    ReconStatement,
    ReconStatementLine,
    ReconTransaction,
)


def _frame(side: SideName, rows: list[Any]) -> pl.DataFrame:
    schema = frames.SCHEMAS[side]
    if not rows:
        return frames.empty(side)
    return frames.check(side, pl.DataFrame(rows, schema=schema, orient="row"))


def load_sides(session: Session, scope_id: int, ledger: str) -> Sides:
    """Every stored row of the scope, as the four checked frames."""
    t = ReconTransaction
    transactions = session.execute(
        select(
            t.txn_id,
            t.kind,
            t.status,
            t.amount_minor,
            t.currency,
            t.created_on,
            t.batch_number,
            t.card_brand,
            t.original_txn_id,
        )
        .where(t.scope_id == scope_id)
        .order_by(t.txn_id)
    ).all()
    r = ReconReceipt
    receipts = session.execute(
        select(
            r.receipt_id,
            r.idempotency_key,
            r.txn_id,
            r.kind,
            r.amount_minor,
            r.currency,
            r.posted_on,
            r.reversed,
            r.customer_id,
            r.reference,
        )
        .where(r.scope_id == scope_id)
        .order_by(r.receipt_id)
    ).all()
    b = ReconBatch
    batches = session.execute(
        select(
            b.batch_number,
            b.settled_on,
            b.gross_minor,
            b.fees_minor,
            b.chargebacks_withheld_minor,
            b.net_minor,
            b.currency,
            b.transaction_count,
        )
        .where(b.scope_id == scope_id)
        .order_by(b.batch_number)
    ).all()
    line = ReconStatementLine
    deposits = session.execute(
        select(
            line.line_id,
            line.statement_id,
            line.booked_on,
            line.amount_minor,
            line.currency,
            line.reference,
            line.bank_ref,
        )
        .join(ReconStatement, ReconStatement.id == line.statement_id)
        .where(ReconStatement.scope_id == scope_id)
        .order_by(line.line_id)
    ).all()
    # A receipt reversed in the ledger (SBC deletes it) while PayTrace took nothing back is
    # out of the books: what is left of the sale's receipts is what reconciles. One whose
    # sale was voided, refunded or charged back stays: it is half of a reversal pair.
    taken_back = {row.original_txn_id for row in transactions if row.kind != "sale"} | {
        row.txn_id for row in transactions if row.status == "voided"
    }
    receipts = [
        row for row in receipts if not row.reversed or (row.txn_id and row.txn_id in taken_back)
    ]
    receipt_rows = [
        (
            row.receipt_id,
            ledger,
            row.idempotency_key or None,
            row.txn_id,
            row.kind,
            row.amount_minor,
            row.currency,
            row.posted_on,
            row.reversed,
            row.customer_id,
            row.reference,
        )
        for row in receipts
    ]
    deposit_rows = [(*row[:1], str(row[1]), *row[2:]) for row in deposits]
    return Sides(
        transactions=_frame("transactions", [tuple(row) for row in transactions]),
        receipts=_frame("receipts", receipt_rows),
        batches=_frame("batches", [tuple(row) for row in batches]),
        deposits=_frame("deposits", deposit_rows),
    )
