"""Level 3: settlement batches to bank deposits (statement credits).

In order: deposits whose reference names a known batch, summed per batch (1:1, or 1:N
when one batch was paid in several credits) and compared with the batch's expected
deposit (net of fees and withheld chargebacks when the spec nets fees); then credits
without a usable reference, paired by exact amount with one open batch settled up to
``tolerance.days`` days before (1:1), then with the open batches of one settlement day
together (N:1). A pairing by amount is made only when neither side had another
candidate; an ambiguous one is left for a person. What remains: batches are deposits in
transit (with their age), credits are unknown credits.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from ledgerlink.recon.breaks import BreakType
from ledgerlink.recon.matching.output import NO_IDS, MoneyText, break_rows, match_rows
from ledgerlink.recon.rules import CompiledSpec


def _due(on: pl.Expr, as_of: dt.date) -> pl.Expr:
    """The date a break's age counts from: ``on``, or ``as_of`` while ``on`` is still ahead
    (a batch settled "tomorrow" in PayTrace's time zone, a credit value-dated ahead). An
    age is days since the item was due, never negative: 0 until it is due. Level 3 is
    recomputed in full by every run, so the clamp never skews an incremental run's aging."""
    return pl.min_horizontal(on, pl.lit(as_of))


def level_three(
    batches: pl.DataFrame,
    deposits: pl.DataFrame,
    spec: CompiledSpec,
    as_of: dt.date,
    money: MoneyText,
) -> tuple[list[pl.DataFrame], list[pl.DataFrame]]:
    rules = spec.spec.deposits
    tol = spec.spec.tolerance.amount_minor
    days = spec.spec.tolerance.days
    credits = deposits.filter(pl.col("amount_minor") > 0)
    matches: list[pl.DataFrame] = []
    breaks: list[pl.DataFrame] = []

    def batch_match(
        frame: pl.DataFrame, rule: pl.Expr, left: pl.Expr, right: pl.Expr, right_minor: pl.Expr
    ) -> None:
        matches.append(
            match_rows(
                frame,
                rule=rule,
                left_side="batches",
                left_first=left.list.first(),
                left_ids=left,
                right_side="deposits",
                right_ids=right,
                amount=pl.col("expected_deposit"),
                currency=pl.col("currency"),
                left_minor=pl.col("expected_deposit"),
                right_minor=right_minor,
                spec_version=spec.version,
            )
        )

    referenced = credits.join(batches.select("bkey"), on="bkey", how="semi")
    per_batch = referenced.group_by("bkey").agg(
        d_ids=pl.col("line_id").sort(),
        d_total=pl.col("amount_minor").sum(),
        d_n=pl.len(),
        d_currency=pl.col("currency").min(),
        d_currencies=pl.col("currency").n_unique(),
        d_on=pl.col("booked_on").min(),
    )
    paired = batches.join(per_batch, on="bkey", how="inner")
    agree = (
        (pl.col("d_currencies") == 1)
        & (pl.col("d_currency") == pl.col("currency"))
        & ((pl.col("d_total") - pl.col("expected_deposit")).abs() <= tol)
    )
    if not rules.split_deposits.enabled:
        agree = agree & (pl.col("d_n") == 1)
    batch_match(
        paired.filter(agree),
        pl.when(pl.col("d_n") > 1)
        .then(pl.lit(rules.split_deposits.rule))
        .otherwise(pl.lit(rules.by_reference.rule)),
        pl.concat_list(pl.col("batch_number")),
        pl.col("d_ids"),
        pl.col("d_total"),
    )
    netting = (
        pl.format(
            "gross {} less fees {} and withheld chargebacks {}",
            money(pl.col("gross_minor"), pl.col("currency")),
            money(pl.col("fees_minor"), pl.col("currency")),
            money(pl.col("chargebacks_withheld_minor"), pl.col("currency")),
        )
        if rules.fee_netting
        else pl.lit("gross")
    )
    # what the difference means to finance: short paid = the processor kept more than
    # the fee schedule and the chargebacks explain
    gap = pl.col("d_total") - pl.col("expected_deposit")
    explained = (
        pl.when(gap < 0)
        .then(
            pl.format(
                "{} less: fees were {} more than the schedule (or more was withheld)",
                money(-gap, pl.col("currency")),
                money(-gap, pl.col("currency")),
            )
        )
        .otherwise(
            pl.format(
                "{} more: fees were {} less than the schedule (or less was withheld)",
                money(gap, pl.col("currency")),
                money(gap, pl.col("currency")),
            )
        )
        if rules.fee_netting
        else pl.when(gap < 0)
        .then(pl.format("{} less", money(-gap, pl.col("currency"))))
        .otherwise(pl.format("{} more", money(gap, pl.col("currency"))))
    )
    breaks.append(
        break_rows(
            paired.filter(~agree),
            BreakType.deposit_mismatch,
            as_of,
            ids=pl.col("d_ids"),
            other_side="batches",
            other_ids=pl.concat_list(pl.col("batch_number")),
            expected=pl.col("expected_deposit"),
            actual=pl.col("d_total"),
            currency=pl.col("currency"),
            on=pl.col("d_on"),
            detail=pl.format(
                "Batch {} should have paid {} ({}) but the bank received {}: {}.",
                pl.col("batch_number"),
                money(pl.col("expected_deposit"), pl.col("currency")),
                netting,
                money(pl.col("d_total"), pl.col("d_currency")),
                explained,
            ),
        )
    )

    open_batches = batches.join(per_batch.select("bkey"), on="bkey", how="anti")
    open_credits = credits.join(referenced.select("line_id"), on="line_id", how="anti")

    if rules.by_amount.enabled and open_batches.height and open_credits.height:
        pairs = _unique_pairs(
            open_batches.select(
                "batch_number",
                "currency",
                "settled_on",
                "expected_deposit",
                b_ids=pl.concat_list(pl.col("batch_number")),
            ),
            open_credits,
            days,
        )
        batch_match(
            pairs,
            pl.lit(rules.by_amount.rule),
            pl.col("b_ids"),
            pl.concat_list(pl.col("line_id")),
            pl.col("expected_deposit"),
        )
        open_batches = open_batches.join(
            pairs.select("batch_number"), on="batch_number", how="anti"
        )
        open_credits = open_credits.join(pairs.select("line_id"), on="line_id", how="anti")

    if rules.combined_batches.enabled and open_batches.height and open_credits.height:
        day_totals = (
            open_batches.group_by(["currency", "settled_on"])
            .agg(
                expected_deposit=pl.col("expected_deposit").sum(),
                b_ids=pl.col("batch_number").sort(),
                n=pl.len(),
            )
            .filter(pl.col("n") > 1)
            .with_columns(batch_number=pl.col("b_ids").list.first())
            .drop("n")
        )
        pairs = _unique_pairs(day_totals, open_credits, days)
        batch_match(
            pairs,
            pl.lit(rules.combined_batches.rule),
            pl.col("b_ids"),
            pl.concat_list(pl.col("line_id")),
            pl.col("expected_deposit"),
        )
        done = pairs.select(batch_number=pl.col("b_ids")).explode("batch_number")
        open_batches = open_batches.join(done, on="batch_number", how="anti")
        open_credits = open_credits.join(pairs.select("line_id"), on="line_id", how="anti")

    breaks.append(
        break_rows(
            open_batches,
            BreakType.deposit_in_transit,
            as_of,
            ids=pl.concat_list(pl.col("batch_number")),
            other_side="deposits",
            other_ids=NO_IDS,
            expected=pl.col("expected_deposit"),
            actual=pl.lit(0),
            currency=pl.col("currency"),
            on=_due(pl.col("settled_on"), as_of),
            detail=pl.format(
                "Batch {} settled on {} for {}; no deposit for it is on a bank statement "
                "yet ({} days).",
                pl.col("batch_number"),
                pl.col("settled_on"),
                money(pl.col("expected_deposit"), pl.col("currency")),
                (pl.lit(as_of) - _due(pl.col("settled_on"), as_of)).dt.total_days(),
            ),
        )
    )
    breaks.append(
        break_rows(
            open_credits,
            BreakType.unknown_credit,
            as_of,
            ids=pl.concat_list(pl.col("line_id")),
            other_side="batches",
            other_ids=NO_IDS,
            expected=pl.lit(0),
            actual=pl.col("amount_minor"),
            currency=pl.col("currency"),
            on=_due(pl.col("booked_on"), as_of),
            detail=pl.format(
                "Credit of {} on {} (reference '{}') matches no settlement batch.",
                money(pl.col("amount_minor"), pl.col("currency")),
                pl.col("booked_on"),
                pl.col("reference").fill_null(""),
            ),
        )
    )
    return matches, breaks


def _unique_pairs(left: pl.DataFrame, credits: pl.DataFrame, days: int) -> pl.DataFrame:
    """``left`` rows (one batch or a day's batches) with the credit of the same currency
    and amount booked 0..``days`` days after settlement, where neither had another."""
    candidates = left.join(
        credits.select("line_id", "currency", "booked_on", amt="amount_minor"),
        left_on=["currency", "expected_deposit"],
        right_on=["currency", "amt"],
        how="inner",
    ).filter(
        (pl.col("booked_on") >= pl.col("settled_on"))
        & ((pl.col("booked_on") - pl.col("settled_on")).dt.total_days() <= days)
    )
    return candidates.filter((pl.len().over("line_id") == 1) & (pl.len().over("batch_number") == 1))
