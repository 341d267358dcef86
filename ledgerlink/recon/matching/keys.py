"""Keys the levels join on, computed once per row: the normalised transaction id of each
transaction (and of its original sale), the transaction each receipt names, the batch
each transaction and deposit belongs to. A :class:`Prepared` holds the sides with these
columns, so an incremental run normalises only its new rows.

Normalisation is the costly part at a million rows (string kernels allocate), so plain
numbers take a fast path: an id that parses as an unsigned integer *is* its key, leading
zeros dropped (the spec's ``strip_leading_zeros``); only ids with letters, spaces or
punctuation go through trim, case and prefix patterns. A spec that keeps leading zeros
sends every id the slow way.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ledgerlink.recon.frames import Sides
from ledgerlink.recon.matching.output import ENGINE, Frame
from ledgerlink.recon.rules import CompiledSpec, Normalise


def with_normalised(frame: Frame, source: pl.Expr, rule: Normalise, name: str) -> Frame:
    """``frame`` with column ``name``: ``source`` normalised per ``rule``; null when
    nothing is left (no key)."""
    frame = frame.with_columns(_src=source.cast(pl.String()))
    src = pl.col("_src")
    if rule.strip_leading_zeros:
        frame = frame.with_columns(_num=src.cast(pl.UInt64, strict=False))
        slow = _slow(pl.when(pl.col("_num").is_null()).then(src), rule)
        frame = frame.with_columns(
            pl.coalesce(pl.col("_num").cast(pl.String()), slow).alias(name)
        ).drop("_num")
    else:
        frame = frame.with_columns(_slow(src, rule).alias(name))
    return frame.drop("_src")


def _slow(expr: pl.Expr, rule: Normalise) -> pl.Expr:
    out = expr
    if rule.trim:
        out = out.str.strip_chars()
    if rule.case == "upper":
        out = out.str.to_uppercase()
    elif rule.case == "lower":
        out = out.str.to_lowercase()
    for prefix in rule.strip_prefixes:
        out = out.str.replace(prefix, "")
    if rule.strip_leading_zeros:
        out = out.str.strip_chars_start("0")
    return out.replace("", None)


def normalise_values(values: list[str | None], rule: Normalise) -> list[str | None]:
    """The keys of ``values`` (for a caller holding a few ids, e.g. a drill-down)."""
    frame = with_normalised(
        pl.DataFrame({"v": values}, schema={"v": pl.String()}), pl.col("v"), rule, "k"
    )
    return frame.get_column("k").to_list()


@dataclass(frozen=True)
class Prepared:
    """The four sides with their join keys; what the levels read.

    - ``transactions`` + ``key``, ``orig_key``
    - ``receipts`` + ``key``, ``key_rule`` (the spec rule that found the key)
    - ``batches`` + ``bkey``, ``expected_deposit`` (net when the spec nets fees)
    - ``deposits`` + ``bkey`` (the batch named in the reference)
    """

    transactions: pl.DataFrame
    receipts: pl.DataFrame
    batches: pl.DataFrame
    deposits: pl.DataFrame

    def concat(self, other: Prepared) -> Prepared:
        return Prepared(
            transactions=pl.concat([self.transactions, other.transactions], rechunk=False),
            receipts=pl.concat([self.receipts, other.receipts], rechunk=False),
            batches=pl.concat([self.batches, other.batches], rechunk=False),
            deposits=pl.concat([self.deposits, other.deposits], rechunk=False),
        )


def prepare(sides: Sides, spec: CompiledSpec) -> Prepared:
    """Compute every row's keys (the only per-row string work of a run)."""
    rules = spec.spec
    norm_txn = rules.normalise.transaction_id
    norm_batch = rules.normalise.batch_number
    txns = with_normalised(sides.transactions.lazy(), pl.col("txn_id"), norm_txn, "key")
    txns = with_normalised(txns, pl.col("original_txn_id"), norm_txn, "orig_key")

    receipts = sides.receipts.lazy().with_columns(
        key=pl.lit(None, dtype=pl.String()), key_rule=pl.lit(None, dtype=pl.String())
    )
    for key, group in zip(rules.receipts.keys, spec.key_groups, strict=True):
        raw: pl.Expr = pl.when(pl.col("key").is_null()).then(
            pl.col(key.column)
        )  # only rows still open
        if key.pattern is not None:
            raw = raw.str.extract(key.pattern, group)
        receipts = (
            with_normalised(receipts, raw, norm_txn, "_k")
            .with_columns(
                key=pl.coalesce(pl.col("key"), pl.col("_k")),
                key_rule=pl.when(pl.col("key").is_null() & pl.col("_k").is_not_null())
                .then(pl.lit(key.rule))
                .otherwise(pl.col("key_rule")),
            )
            .drop("_k")
        )

    expected = pl.col("gross_minor")
    if rules.deposits.fee_netting:
        expected = expected - pl.col("fees_minor") - pl.col("chargebacks_withheld_minor")
    batches = with_normalised(
        sides.batches.lazy(), pl.col("batch_number"), norm_batch, "bkey"
    ).with_columns(expected_deposit=expected)
    reference = pl.col("reference").str.extract(
        rules.deposits.by_reference.pattern, spec.deposit_group
    )
    deposits = with_normalised(sides.deposits.lazy(), reference, norm_batch, "bkey")
    t, r, b, d = pl.collect_all([txns, receipts, batches, deposits], engine=ENGINE)
    return Prepared(transactions=t, receipts=r, batches=b, deposits=d)


def batch_key_of(frame: Frame, spec: CompiledSpec) -> Frame:
    """``frame`` (with ``batch_number``, few distinct values) + ``bkey``."""
    return with_normalised(frame, pl.col("batch_number"), spec.spec.normalise.batch_number, "bkey")
