"""Level 2: each settlement batch against its transactions.

A batch's gross must be its approved sales less its approved refunds; a sale voided
before settlement leaves the batch, a chargeback does not (it is withheld from a deposit,
see level 3). The ledger's receipts follow the transactions (level 1 reports each one
that does not), so a batch whose gross is not its transactions' total cannot agree with
the ledger: ``batch_ledger_mismatch``, with the batch's transactions for the drill-down.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from ledgerlink.recon.breaks import BreakType
from ledgerlink.recon.matching.keys import batch_key_of
from ledgerlink.recon.matching.output import NO_IDS, MoneyText, break_rows
from ledgerlink.recon.rules import CompiledSpec


def level_two(
    txns: pl.DataFrame | pl.LazyFrame,
    batches: pl.DataFrame | pl.LazyFrame,
    spec: CompiledSpec,
    as_of: dt.date,
    money: MoneyText,
) -> pl.LazyFrame:
    """Breaks for ``batches`` (prepared) given ``txns`` (prepared; at least every
    transaction of those batches and the voids of their sales)."""
    approved = txns.lazy().filter(pl.col("status") == "approved")
    voided = (
        approved.filter((pl.col("kind") == "void") & pl.col("orig_key").is_not_null())
        .select(key="orig_key")
        .unique()
    )
    sales = approved.filter(pl.col("kind") == "sale").join(voided, on="key", how="anti")
    settled = pl.concat(
        [
            sales.select("batch_number", "txn_id", signed="amount_minor"),
            approved.filter(pl.col("kind") == "refund").select(
                "batch_number", "txn_id", signed=-pl.col("amount_minor")
            ),
        ]
    ).filter(pl.col("batch_number").is_not_null())
    per_number = settled.group_by("batch_number").agg(
        txn_total=pl.col("signed").sum(), txn_count=pl.len()
    )
    per_batch = (
        batch_key_of(per_number, spec)
        .group_by("bkey")
        .agg(
            txn_total=pl.col("txn_total").sum(),
            txn_count=pl.col("txn_count").sum(),
            numbers=pl.col("batch_number"),
        )
    )
    joined = (
        batches.lazy()
        .join(per_batch, on="bkey", how="left")
        .with_columns(
            txn_total=pl.col("txn_total").fill_null(0),
            txn_count=pl.col("txn_count").fill_null(0),
            numbers=pl.col("numbers").fill_null(NO_IDS),
        )
    )
    off = joined.filter(
        (pl.col("gross_minor") - pl.col("txn_total")).abs() > spec.spec.tolerance.amount_minor
    )
    numbers = off.select("bkey", batch_number="numbers").explode("batch_number")
    ids = (
        settled.join(numbers, on="batch_number", how="inner")
        .group_by("bkey")
        .agg(txn_ids=pl.col("txn_id").sort())
    )
    off = off.join(ids, on="bkey", how="left")
    return break_rows(
        off,
        BreakType.batch_ledger_mismatch,
        as_of,
        ids=pl.concat_list(pl.col("batch_number")),
        other_side="transactions",
        other_ids=pl.col("txn_ids").fill_null(NO_IDS),
        expected=pl.col("gross_minor"),
        actual=pl.col("txn_total"),
        currency=pl.col("currency"),
        on=pl.col("settled_on"),
        detail=pl.format(
            "Batch {} settled {} gross, but its {} approved sales and refunds, which the "
            "ledger's receipts follow, come to {}.",
            pl.col("batch_number"),
            money(pl.col("gross_minor"), pl.col("currency")),
            pl.col("txn_count"),
            money(pl.col("txn_total"), pl.col("currency")),
        ),
    )
