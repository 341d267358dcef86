"""The matcher: four checked sides and a compiled rules spec in, matches, breaks and
totals out. Pure: no database, no HTTP, no clock (``as_of`` is given).

Three levels, each joins and group-bys over whole columns (never a Python loop over rows):

1. **Card transactions to ledger receipts**, by the transaction id each receipt carries
   (its ``txn_id`` column, else its idempotency key, else its reference: the spec's keys,
   tried in order). A sale expects receipts summing to its amount (one receipt, or several
   when a payment was split over invoices); a refund expects a refund receipt. A sale
   voided, charged back or fully refunded in PayTrace forms one group with its reversals
   on both sides: matched when the ledger reversed (or refunded) it too,
   ``receipt_for_reversed`` when it did not, nothing owed when it was voided before any
   receipt was posted.
2. **Settlement batches to their transactions**: a batch's gross must equal its approved
   sales less refunds (voids and chargebacks do not settle), otherwise the batch total and
   the ledger's receipts for it cannot agree (``batch_ledger_mismatch``).
3. **Batches to bank deposits** (credits): by the batch number read from the deposit's
   reference (1:1, or 1:N when one batch was paid in several deposits), then deposits
   without a usable reference by amount within the date tolerance, one batch to one
   deposit, then several batches settled the same day to one deposit (N:1). The expected
   deposit is gross - fees - withheld chargebacks when the spec nets fees.

Every row of every side ends in exactly one match or in a break (``ids`` on the break's
side, ``other_ids`` on the other), except declined transactions and statement debits,
which carry no money to reconcile and are left out of the totals.

Determinism: every frame is sorted explicitly before it is returned; ``match_id`` and
``break_id`` are built from the rule or break type and the sorted ids involved, so a
rerun on the same input gives the same ids.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import polars as pl

from ledgerlink.domain.money import MoneyError, minor_digits
from ledgerlink.recon.breaks import BreakType
from ledgerlink.recon.frames import SIDES, SideName, Sides
from ledgerlink.recon.rules import CompiledSpec, Normalise

_IDS = pl.List(pl.String())

MATCH_SCHEMA: Final[dict[str, pl.DataType]] = {
    "match_id": pl.String(),
    "rule": pl.String(),
    "spec_version": pl.String(),
    "left_side": pl.String(),
    "left_ids": _IDS,
    "right_side": pl.String(),
    "right_ids": _IDS,
    "amount_minor": pl.Int64(),
    "currency": pl.String(),
}

BREAK_SCHEMA: Final[dict[str, pl.DataType]] = {
    "break_id": pl.String(),
    "type": pl.String(),
    "side": pl.String(),
    "ids": _IDS,
    "other_side": pl.String(),
    "other_ids": _IDS,
    "amount_minor": pl.Int64(),
    "expected_minor": pl.Int64(),
    "actual_minor": pl.Int64(),
    "currency": pl.String(),
    "as_of_days": pl.Int64(),
    "detail": pl.String(),
}

TOTALS_SCHEMA: Final[dict[str, pl.DataType]] = {
    "side": pl.String(),
    "currency": pl.String(),
    "total_minor": pl.Int64(),
    "matched_minor": pl.Int64(),
    "unmatched_minor": pl.Int64(),
}


@dataclass(frozen=True)
class Result:
    """What one run found. ``totals`` has one row per side and currency:
    ``matched_minor + unmatched_minor == total_minor``."""

    matches: pl.DataFrame
    breaks: pl.DataFrame
    totals: pl.DataFrame
    spec_version: str
    as_of: dt.date

    def open_ids(self) -> dict[SideName, pl.Series]:
        """Ids, per side, of every row named by a break: what is still open."""
        found: dict[SideName, list[pl.Series]] = {side: [] for side in SIDES}
        for ids, sides in (("ids", "side"), ("other_ids", "other_side")):
            exploded = self.breaks.select(sides, ids).explode(ids).drop_nulls(ids)
            for side in SIDES:
                found[side].append(exploded.filter(pl.col(sides) == side).get_column(ids))
        return {
            side: pl.concat(parts).unique().sort() if parts else pl.Series(dtype=pl.String())
            for side, parts in found.items()
        }


# ---- normalisation ------------------------------------------------------------------------


def normalised(expr: pl.Expr, rule: Normalise) -> pl.Expr:
    """``expr`` made comparable per ``rule``; empty results become null (no key)."""
    out = expr.cast(pl.String())
    if rule.trim:
        out = out.str.strip_chars()
    if rule.case == "upper":
        out = out.str.to_uppercase()
    elif rule.case == "lower":
        out = out.str.to_lowercase()
    for prefix in rule.strip_prefixes:
        out = out.str.replace(prefix, "")
    if rule.strip_leading_zeros:
        stripped = out.str.strip_chars_start("0")
        out = pl.when((stripped == "") & (out != "")).then(pl.lit("0")).otherwise(stripped)
    return pl.when(out == "").then(None).otherwise(out)


def _receipt_key(spec: CompiledSpec) -> tuple[pl.Expr, pl.Expr]:
    """The transaction key of each receipt and the name of the rule that found it."""
    rules = spec.spec
    candidates: list[tuple[str, pl.Expr]] = []
    for key, group in zip(rules.receipts.keys, spec.key_groups, strict=True):
        raw = pl.col(key.column)
        if key.pattern is not None:
            raw = raw.str.extract(key.pattern, group)
        candidates.append((key.rule, normalised(raw, rules.normalise.transaction_id)))
    key_expr = pl.coalesce([expr for _, expr in candidates])
    rule_expr: pl.Expr = pl.lit(None, dtype=pl.String())
    for name, expr in reversed(candidates):
        rule_expr = pl.when(expr.is_not_null()).then(pl.lit(name)).otherwise(rule_expr)
    return key_expr, rule_expr


# ---- building matches and breaks ----------------------------------------------------------


def _match(
    frame: pl.DataFrame,
    *,
    rule: pl.Expr,
    left_side: str,
    left_ids: pl.Expr,
    right_side: str,
    right_ids: pl.Expr,
    amount: pl.Expr,
    currency: pl.Expr,
) -> pl.DataFrame:
    return frame.select(
        rule=rule,
        left_side=pl.lit(left_side),
        left_ids=left_ids.cast(_IDS).list.sort(),
        right_side=pl.lit(right_side),
        right_ids=right_ids.cast(_IDS).list.sort(),
        amount_minor=amount.cast(pl.Int64),
        currency=currency,
    )


def _break(
    frame: pl.DataFrame,
    kind: BreakType,
    as_of: dt.date,
    *,
    ids: pl.Expr,
    other_side: str,
    other_ids: pl.Expr,
    expected: pl.Expr,
    actual: pl.Expr,
    currency: pl.Expr,
    on: pl.Expr,
    detail: pl.Expr,
    amount: pl.Expr | None = None,
) -> pl.DataFrame:
    at_stake = (expected - actual).abs() if amount is None else amount
    return frame.select(
        type=pl.lit(kind.value),
        side=pl.lit(kind.side),
        ids=ids.cast(_IDS).list.sort(),
        other_side=pl.lit(other_side),
        other_ids=other_ids.cast(_IDS).list.sort(),
        amount_minor=at_stake.cast(pl.Int64),
        expected_minor=expected.cast(pl.Int64),
        actual_minor=actual.cast(pl.Int64),
        currency=currency,
        as_of_days=(pl.lit(as_of) - on).dt.total_days().cast(pl.Int64),
        detail=detail,
    )


def _money(amount: pl.Expr, currency: pl.Expr, digits: dict[str, int]) -> pl.Expr:
    """``amount`` (minor units) as ``1,234.50 USD``-like text, without a Python loop."""
    by_digits: dict[int, list[str]] = {}
    for code, count in digits.items():
        by_digits.setdefault(count, []).append(code)
    out: pl.Expr = pl.lit(None, dtype=pl.String())
    magnitude = amount.abs()
    sign = pl.when(amount < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    for count, codes in sorted(by_digits.items()):
        if count == 0:
            text = pl.format("{}{} {}", sign, magnitude, currency)
        else:
            scale = 10**count
            text = pl.format(
                "{}{}.{} {}",
                sign,
                magnitude // scale,
                (magnitude % scale).cast(pl.String).str.zfill(count),
                currency,
            )
        out = pl.when(currency.is_in(codes)).then(text).otherwise(out)
    return out


def _digits(sides: Sides) -> dict[str, int]:
    codes: set[str] = set()
    for side in SIDES:
        codes.update(sides.side(side).get_column("currency").unique().to_list())
    out: dict[str, int] = {}
    for code in codes:
        try:
            out[code] = minor_digits(code)
        except MoneyError:
            out[code] = 2
    return out


# ---- level 1: transactions and receipts ---------------------------------------------------


def _level_one(
    sides: Sides, spec: CompiledSpec, as_of: dt.date, fmt: _Fmt
) -> tuple[list[pl.DataFrame], list[pl.DataFrame]]:
    rules = spec.spec
    tol = rules.tolerance.amount_minor
    norm_txn = rules.normalise.transaction_id
    txns = sides.transactions.filter(pl.col("status") != "declined").with_columns(
        key=normalised(pl.col("txn_id"), norm_txn),
        orig_key=normalised(pl.col("original_txn_id"), norm_txn),
    )
    key_expr, rule_expr = _receipt_key(spec)
    receipts = sides.receipts.with_columns(key=key_expr, key_rule=rule_expr)

    sales = txns.filter(pl.col("kind") == "sale")
    reversals = (
        txns.filter(pl.col("kind").is_in(["void", "chargeback"]) & pl.col("orig_key").is_not_null())
        .group_by("orig_key")
        .agg(gv_ids=pl.col("txn_id"))
    )
    refunds = txns.filter(pl.col("kind") == "refund")
    refunded = (
        refunds.filter(pl.col("orig_key").is_not_null())
        .group_by("orig_key")
        .agg(refunded=pl.col("amount_minor").sum(), gr_ids=pl.col("txn_id"))
    )
    sale_state = (
        sales.join(reversals, left_on="key", right_on="orig_key", how="left")
        .join(refunded, left_on="key", right_on="orig_key", how="left")
        .with_columns(
            reversed_gw=(pl.col("status") == "voided")
            | pl.col("gv_ids").is_not_null()
            | (pl.col("refunded").fill_null(0) >= pl.col("amount_minor")),
        )
    )

    # Receipts of each kind, grouped by the transaction key they name; a second receipt
    # with the same key and amount as an earlier one is a duplicate candidate.
    flagged = (
        receipts.filter(pl.col("key").is_not_null())
        .sort(["key", "kind", "amount_minor", "posted_on", "receipt_id"])
        .with_columns(
            dup=pl.int_range(pl.len()).over(["key", "kind", "amount_minor"]) > 0,
        )
    )
    grouped = flagged.group_by(["key", "kind"]).agg(
        n=pl.len(),
        total=pl.col("amount_minor").sum(),
        distinct_total=pl.col("amount_minor").filter(~pl.col("dup")).sum(),
        r_ids=pl.col("receipt_id"),
        first_ids=pl.col("receipt_id").filter(~pl.col("dup")),
        dup_ids=pl.col("receipt_id").filter(pl.col("dup")),
        any_reversed=pl.col("reversed").any(),
        r_currency=pl.col("currency").min(),
        r_currencies=pl.col("currency").n_unique(),
        r_rule=pl.col("key_rule").first(),
        r_first_on=pl.col("posted_on").min(),
        r_dup_on=pl.col("posted_on").filter(pl.col("dup")).min(),
    )
    r_sales = grouped.filter(pl.col("kind") == "receipt").drop("kind")
    r_reversals = grouped.filter(pl.col("kind") == "reversal").select(
        "key", lrev_ids=pl.col("r_ids")
    )
    r_refunds = grouped.filter(pl.col("kind") == "refund").drop("kind")

    matches: list[pl.DataFrame] = []
    breaks: list[pl.DataFrame] = []

    # -- sales voided, charged back or fully refunded in PayTrace
    gone = sale_state.filter(pl.col("reversed_gw"))
    refund_receipts_of_gone = (
        refunds.join(gone.select(orig_key="key"), on="orig_key", how="semi")
        .join(r_refunds, on="key", how="inner")
        .group_by("orig_key")
        .agg(lref_ids=pl.col("r_ids").explode(), lref_total=pl.col("total").sum())
    )
    gone = (
        gone.join(r_sales, on="key", how="left")
        .join(r_reversals, on="key", how="left")
        .join(refund_receipts_of_gone, left_on="key", right_on="orig_key", how="left")
        .with_columns(
            txn_ids=pl.concat_list(
                pl.col("txn_id"),
                pl.col("gv_ids").fill_null(pl.lit([], dtype=_IDS)),
                pl.col("gr_ids").fill_null(pl.lit([], dtype=_IDS)),
            ),
            ledger_ids=pl.concat_list(
                pl.col("r_ids").fill_null(pl.lit([], dtype=_IDS)),
                pl.col("lrev_ids").fill_null(pl.lit([], dtype=_IDS)),
                pl.col("lref_ids").fill_null(pl.lit([], dtype=_IDS)),
            ),
            reversed_ledger=pl.col("any_reversed").fill_null(False)
            | pl.col("lrev_ids").is_not_null()
            | (pl.col("lref_total").fill_null(0) >= pl.col("total").fill_null(0)),
        )
    )
    no_receipt = gone.filter(pl.col("n").is_null())
    if rules.receipts.voided_before_posting.enabled:
        matches.append(
            _match(
                no_receipt,
                rule=pl.lit(rules.receipts.voided_before_posting.rule),
                left_side="transactions",
                left_ids=pl.col("txn_ids"),
                right_side="receipts",
                right_ids=pl.lit([], dtype=_IDS),
                amount=pl.col("amount_minor"),
                currency=pl.col("currency"),
            )
        )
    else:
        breaks.append(_missing(no_receipt, as_of, fmt, ids=pl.col("txn_ids")))
    with_receipt = gone.filter(pl.col("n").is_not_null())
    both = with_receipt.filter(pl.col("reversed_ledger"))
    if rules.receipts.reversed_both_sides.enabled:
        matches.append(
            _match(
                both,
                rule=pl.lit(rules.receipts.reversed_both_sides.rule),
                left_side="transactions",
                left_ids=pl.col("txn_ids"),
                right_side="receipts",
                right_ids=pl.col("ledger_ids"),
                amount=pl.col("amount_minor"),
                currency=pl.col("currency"),
            )
        )
        still = with_receipt.filter(~pl.col("reversed_ledger"))
    else:
        still = with_receipt
    what = (
        pl.when(pl.col("status") == "voided")
        .then(pl.lit("voided"))
        .when(pl.col("gv_ids").is_not_null())
        .then(pl.lit("voided or charged back"))
        .otherwise(pl.lit("refunded in full"))
    )
    breaks.append(
        _break(
            still,
            BreakType.receipt_for_reversed,
            as_of,
            ids=pl.col("ledger_ids"),
            other_side="transactions",
            other_ids=pl.col("txn_ids"),
            expected=pl.lit(0),
            actual=pl.col("total") - pl.col("lref_total").fill_null(0),
            currency=pl.col("currency"),
            on=pl.col("r_first_on"),
            detail=pl.format(
                "Sale {} was {} in PayTrace, but the ledger still holds its receipt of {}; "
                "it was not reversed.",
                pl.col("txn_id"),
                what,
                fmt(pl.col("total"), pl.col("r_currency")),
            ),
        )
    )

    # -- sales and refunds that stand: keyed 1:1 or 1:N against receipts of their kind
    standing_sales = sale_state.filter(~pl.col("reversed_gw")).join(r_sales, on="key", how="left")
    refund_state = refunds.join(
        sale_state.select(orig_key="key", sale_gone="reversed_gw"), on="orig_key", how="left"
    )
    standing_refunds = refund_state.filter(~pl.col("sale_gone").fill_null(False)).join(
        r_refunds, on="key", how="left"
    )
    for standing in (standing_sales, standing_refunds):
        found_m, found_b = _keyed(standing, spec, as_of, fmt, tol)
        matches.extend(found_m)
        breaks.extend(found_b)

    # -- void/chargeback rows whose sale PayTrace did not give: nothing to post
    lone = txns.filter(pl.col("kind").is_in(["void", "chargeback"])).join(
        sales.select(orig_key="key"), on="orig_key", how="anti"
    )
    matches.append(
        _match(
            lone,
            rule=pl.lit(rules.receipts.voided_before_posting.rule),
            left_side="transactions",
            left_ids=pl.concat_list(pl.col("txn_id")),
            right_side="receipts",
            right_ids=pl.lit([], dtype=_IDS),
            amount=pl.col("amount_minor"),
            currency=pl.col("currency"),
        )
    )

    # -- receipts nothing above accounted for
    used = pl.concat(
        [
            frame.select(pl.col(column).alias("receipt_id")).explode("receipt_id")
            for frame, column in (
                (with_receipt, "ledger_ids"),
                (standing_sales.filter(pl.col("r_ids").is_not_null()), "r_ids"),
                (standing_refunds.filter(pl.col("r_ids").is_not_null()), "r_ids"),
            )
        ]
    )
    orphans = receipts.join(used, on="receipt_id", how="anti")
    breaks.append(
        _break(
            orphans,
            BreakType.orphan_receipt,
            as_of,
            ids=pl.concat_list(pl.col("receipt_id")),
            other_side="transactions",
            other_ids=pl.lit([], dtype=_IDS),
            expected=pl.lit(0),
            actual=pl.col("amount_minor"),
            currency=pl.col("currency"),
            on=pl.col("posted_on"),
            detail=pl.when(pl.col("key").is_null())
            .then(
                pl.format(
                    "Receipt {} of {} names no PayTrace transaction (no id in its key or "
                    "reference).",
                    pl.col("receipt_id"),
                    fmt(pl.col("amount_minor"), pl.col("currency")),
                )
            )
            .otherwise(
                pl.format(
                    "Receipt {} ({}) of {} is for PayTrace transaction {}, which has no "
                    "approved {} to match it.",
                    pl.col("receipt_id"),
                    pl.col("kind"),
                    fmt(pl.col("amount_minor"), pl.col("currency")),
                    pl.col("key"),
                    pl.when(pl.col("kind") == "reversal")
                    .then(pl.lit("void or chargeback"))
                    .when(pl.col("kind") == "refund")
                    .then(pl.lit("refund"))
                    .otherwise(pl.lit("sale")),
                )
            ),
        )
    )
    return matches, breaks


class _Fmt:
    def __init__(self, digits: dict[str, int]) -> None:
        self.digits = digits

    def __call__(self, amount: pl.Expr, currency: pl.Expr) -> pl.Expr:
        return _money(amount, currency, self.digits)


def _missing(frame: pl.DataFrame, as_of: dt.date, fmt: _Fmt, *, ids: pl.Expr) -> pl.DataFrame:
    return _break(
        frame,
        BreakType.missing_receipt,
        as_of,
        ids=ids,
        other_side="receipts",
        other_ids=pl.lit([], dtype=_IDS),
        expected=pl.col("amount_minor"),
        actual=pl.lit(0),
        currency=pl.col("currency"),
        on=pl.col("created_on"),
        detail=pl.format(
            "PayTrace {} {} of {} on {} was approved but no {} is in the ledger.",
            pl.col("kind"),
            pl.col("txn_id"),
            fmt(pl.col("amount_minor"), pl.col("currency")),
            pl.col("created_on"),
            pl.when(pl.col("kind") == "refund").then(pl.lit("refund")).otherwise(pl.lit("receipt")),
        ),
    )


def _keyed(
    frame: pl.DataFrame, spec: CompiledSpec, as_of: dt.date, fmt: _Fmt, tol: int
) -> tuple[list[pl.DataFrame], list[pl.DataFrame]]:
    """Transactions joined (left) to the receipts naming them: match, missing, duplicate
    or amount mismatch."""
    rules = spec.spec
    split = rules.receipts.split_payments
    same_currency = (pl.col("r_currencies") == 1) & (pl.col("r_currency") == pl.col("currency"))
    exact = same_currency & ((pl.col("total") - pl.col("amount_minor")).abs() <= tol)
    if not split.enabled:
        exact = exact & (pl.col("n") == 1)
    deduped = (
        same_currency
        & (pl.col("n") > 1)
        & ((pl.col("distinct_total") - pl.col("amount_minor")).abs() <= tol)
    )
    if not split.enabled:
        deduped = deduped & (pl.col("first_ids").list.len() == 1)
    missing = frame.filter(pl.col("n").is_null())
    found = frame.filter(pl.col("n").is_not_null()).with_columns(
        outcome=pl.when(exact)
        .then(pl.lit("match"))
        .when(deduped)
        .then(pl.lit("duplicate"))
        .otherwise(pl.lit("mismatch"))
    )
    matched = found.filter(pl.col("outcome") != "mismatch")
    rule = (
        pl.when(pl.col("first_ids").list.len() > 1)
        .then(pl.lit(split.rule))
        .otherwise(pl.col("r_rule"))
    )
    good = matched.filter(pl.col("outcome") == "match")
    doubled = matched.filter(pl.col("outcome") == "duplicate")
    matches = [
        _match(
            good,
            rule=pl.when(pl.col("n") > 1).then(pl.lit(split.rule)).otherwise(pl.col("r_rule")),
            left_side="transactions",
            left_ids=pl.concat_list(pl.col("txn_id")),
            right_side="receipts",
            right_ids=pl.col("r_ids"),
            amount=pl.col("amount_minor"),
            currency=pl.col("currency"),
        ),
        _match(
            doubled,
            rule=rule,
            left_side="transactions",
            left_ids=pl.concat_list(pl.col("txn_id")),
            right_side="receipts",
            right_ids=pl.col("first_ids"),
            amount=pl.col("amount_minor"),
            currency=pl.col("currency"),
        ),
    ]
    mismatched = found.filter(pl.col("outcome") == "mismatch")
    breaks = [
        _missing(missing, as_of, fmt, ids=pl.concat_list(pl.col("txn_id"))),
        _break(
            doubled,
            BreakType.duplicate_receipt,
            as_of,
            ids=pl.col("dup_ids"),
            other_side="transactions",
            other_ids=pl.concat_list(pl.col("txn_id")),
            expected=pl.col("amount_minor"),
            actual=pl.col("total"),
            currency=pl.col("currency"),
            on=pl.col("r_dup_on"),
            detail=pl.format(
                "{} {} of {} was posted to the ledger {} times (receipts {}).",
                pl.col("kind").str.to_titlecase(),
                pl.col("txn_id"),
                fmt(pl.col("amount_minor"), pl.col("currency")),
                pl.col("n"),
                pl.col("r_ids").list.sort().list.join(", "),
            ),
        ),
        _break(
            mismatched,
            BreakType.amount_mismatch,
            as_of,
            ids=pl.col("r_ids"),
            other_side="transactions",
            other_ids=pl.concat_list(pl.col("txn_id")),
            expected=pl.col("amount_minor"),
            actual=pl.col("total"),
            currency=pl.col("currency"),
            on=pl.col("created_on"),
            detail=pl.format(
                "PayTrace {} {} is {} but the ledger's {} for it come to {}.",
                pl.col("kind"),
                pl.col("txn_id"),
                fmt(pl.col("amount_minor"), pl.col("currency")),
                pl.when(pl.col("kind") == "refund")
                .then(pl.lit("refunds"))
                .otherwise(pl.lit("receipts")),
                fmt(pl.col("total"), pl.col("r_currency")),
            ),
        ),
    ]
    return matches, breaks


# ---- level 2: batches and their transactions ----------------------------------------------


def _batch_keys(sides: Sides, spec: CompiledSpec) -> pl.DataFrame:
    """Batches with their normalised key and the deposit expected from each."""
    rules = spec.spec
    expected = pl.col("gross_minor")
    if rules.deposits.fee_netting:
        expected = expected - pl.col("fees_minor") - pl.col("chargebacks_withheld_minor")
    return sides.batches.with_columns(
        bkey=normalised(pl.col("batch_number"), rules.normalise.batch_number),
        expected_deposit=expected,
    )


def _level_two(
    sides: Sides, batches: pl.DataFrame, spec: CompiledSpec, as_of: dt.date, fmt: _Fmt
) -> pl.DataFrame:
    rules = spec.spec
    norm_txn = rules.normalise.transaction_id
    txns = sides.transactions.filter(pl.col("status") == "approved").with_columns(
        key=normalised(pl.col("txn_id"), norm_txn),
        orig_key=normalised(pl.col("original_txn_id"), norm_txn),
        bkey=normalised(pl.col("batch_number"), rules.normalise.batch_number),
    )
    voided = txns.filter(pl.col("kind") == "void").select(key="orig_key").unique()
    settled = txns.filter(pl.col("bkey").is_not_null()).join(voided, on="key", how="anti")
    signed = (
        pl.when(pl.col("kind") == "sale")
        .then(pl.col("amount_minor"))
        .when(pl.col("kind") == "refund")
        .then(-pl.col("amount_minor"))
        .otherwise(0)
    )
    per_batch = settled.group_by("bkey").agg(
        txn_total=signed.sum(), txn_ids=pl.col("txn_id"), txn_count=pl.len()
    )
    joined = batches.join(per_batch, on="bkey", how="left").with_columns(
        txn_total=pl.col("txn_total").fill_null(0),
        txn_ids=pl.col("txn_ids").fill_null(pl.lit([], dtype=_IDS)),
        txn_count=pl.col("txn_count").fill_null(0),
    )
    off = joined.filter(
        (pl.col("gross_minor") - pl.col("txn_total")).abs() > rules.tolerance.amount_minor
    )
    return _break(
        off,
        BreakType.batch_ledger_mismatch,
        as_of,
        ids=pl.concat_list(pl.col("batch_number")),
        other_side="transactions",
        other_ids=pl.col("txn_ids"),
        expected=pl.col("gross_minor"),
        actual=pl.col("txn_total"),
        currency=pl.col("currency"),
        on=pl.col("settled_on"),
        detail=pl.format(
            "Batch {} settled {} gross, but its {} approved transactions, which the "
            "ledger's receipts follow, come to {}.",
            pl.col("batch_number"),
            fmt(pl.col("gross_minor"), pl.col("currency")),
            pl.col("txn_count"),
            fmt(pl.col("txn_total"), pl.col("currency")),
        ),
    )


# ---- level 3: batches and deposits ---------------------------------------------------------


def _level_three(
    sides: Sides, batches: pl.DataFrame, spec: CompiledSpec, as_of: dt.date, fmt: _Fmt
) -> tuple[list[pl.DataFrame], list[pl.DataFrame]]:
    rules = spec.spec
    deposits_rules = rules.deposits
    tol = rules.tolerance.amount_minor
    days = rules.tolerance.days
    credits = sides.deposits.filter(pl.col("amount_minor") > 0).with_columns(
        bkey=normalised(
            pl.col("reference").str.extract(
                deposits_rules.by_reference.pattern, spec.deposit_group
            ),
            rules.normalise.batch_number,
        )
    )
    matches: list[pl.DataFrame] = []
    breaks: list[pl.DataFrame] = []

    # by reference: every deposit naming a known batch, grouped per batch (1:1 or 1:N)
    referenced = credits.join(batches.select("bkey"), on="bkey", how="semi")
    per_batch = referenced.group_by("bkey").agg(
        d_ids=pl.col("line_id"),
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
    if not deposits_rules.split_deposits.enabled:
        agree = agree & (pl.col("d_n") == 1)
    good = paired.filter(agree)
    matches.append(
        _match(
            good,
            rule=pl.when(pl.col("d_n") > 1)
            .then(pl.lit(deposits_rules.split_deposits.rule))
            .otherwise(pl.lit(deposits_rules.by_reference.rule)),
            left_side="batches",
            left_ids=pl.concat_list(pl.col("batch_number")),
            right_side="deposits",
            right_ids=pl.col("d_ids"),
            amount=pl.col("expected_deposit"),
            currency=pl.col("currency"),
        )
    )
    netting = "gross less fees and withheld chargebacks" if deposits_rules.fee_netting else "gross"
    breaks.append(
        _break(
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
                "Batch {} should have paid {} ({}) but the bank received {}.",
                pl.col("batch_number"),
                fmt(pl.col("expected_deposit"), pl.col("currency")),
                pl.lit(netting),
                fmt(pl.col("d_total"), pl.col("d_currency")),
            ),
        )
    )

    open_batches = batches.join(per_batch.select("bkey"), on="bkey", how="anti")
    open_credits = credits.join(referenced.select("line_id"), on="line_id", how="anti")

    # 1:1 by amount within the days; only pairs that are unambiguous on both sides
    if deposits_rules.by_amount.enabled and open_batches.height and open_credits.height:
        pairs = _unique_pairs(
            open_batches.select(
                "batch_number",
                "currency",
                "settled_on",
                "expected_deposit",
                b_ids=pl.concat_list(pl.col("batch_number")),
            ),
            open_credits,
            "expected_deposit",
            days,
        )
        matches.append(
            _match(
                pairs,
                rule=pl.lit(deposits_rules.by_amount.rule),
                left_side="batches",
                left_ids=pl.col("b_ids"),
                right_side="deposits",
                right_ids=pl.concat_list(pl.col("line_id")),
                amount=pl.col("expected_deposit"),
                currency=pl.col("currency"),
            )
        )
        open_batches = open_batches.join(
            pairs.select("batch_number"), on="batch_number", how="anti"
        )
        open_credits = open_credits.join(pairs.select("line_id"), on="line_id", how="anti")

    # N:1: the batches settled on one day, together, to one deposit
    if deposits_rules.combined_batches.enabled and open_batches.height and open_credits.height:
        days_total = (
            open_batches.group_by(["currency", "settled_on"])
            .agg(
                expected_deposit=pl.col("expected_deposit").sum(),
                b_ids=pl.col("batch_number"),
                n=pl.len(),
            )
            .filter(pl.col("n") > 1)
            .with_columns(batch_number=pl.col("b_ids").list.sort().list.first())
        )
        pairs = _unique_pairs(days_total.drop("n"), open_credits, "expected_deposit", days)
        matches.append(
            _match(
                pairs,
                rule=pl.lit(deposits_rules.combined_batches.rule),
                left_side="batches",
                left_ids=pl.col("b_ids"),
                right_side="deposits",
                right_ids=pl.concat_list(pl.col("line_id")),
                amount=pl.col("expected_deposit"),
                currency=pl.col("currency"),
            )
        )
        done = pairs.select(batch_number=pl.col("b_ids")).explode("batch_number")
        open_batches = open_batches.join(done, on="batch_number", how="anti")
        open_credits = open_credits.join(pairs.select("line_id"), on="line_id", how="anti")

    breaks.append(
        _break(
            open_batches,
            BreakType.deposit_in_transit,
            as_of,
            ids=pl.concat_list(pl.col("batch_number")),
            other_side="deposits",
            other_ids=pl.lit([], dtype=_IDS),
            expected=pl.col("expected_deposit"),
            actual=pl.lit(0),
            currency=pl.col("currency"),
            on=pl.col("settled_on"),
            detail=pl.format(
                "Batch {} settled on {} for {} net; no deposit for it is on a statement yet "
                "({} days).",
                pl.col("batch_number"),
                pl.col("settled_on"),
                fmt(pl.col("expected_deposit"), pl.col("currency")),
                (pl.lit(as_of) - pl.col("settled_on")).dt.total_days(),
            ),
        )
    )
    breaks.append(
        _break(
            open_credits,
            BreakType.unknown_credit,
            as_of,
            ids=pl.concat_list(pl.col("line_id")),
            other_side="batches",
            other_ids=pl.lit([], dtype=_IDS),
            expected=pl.lit(0),
            actual=pl.col("amount_minor"),
            currency=pl.col("currency"),
            on=pl.col("booked_on"),
            detail=pl.format(
                "Credit of {} on {} (reference '{}') matches no settlement batch.",
                fmt(pl.col("amount_minor"), pl.col("currency")),
                pl.col("booked_on"),
                pl.col("reference").fill_null(""),
            ),
        )
    )
    return matches, breaks


def _unique_pairs(
    left: pl.DataFrame, credits: pl.DataFrame, amount: str, days: int
) -> pl.DataFrame:
    """Left rows (one or more batches) paired with credits of the same currency and amount
    booked 0..``days`` days after settlement, keeping only pairs where neither side had
    another candidate (an ambiguous pair is left for a person)."""
    candidates = left.join(
        credits.select("line_id", "currency", "booked_on", amt="amount_minor"),
        left_on=["currency", amount],
        right_on=["currency", "amt"],
        how="inner",
    ).filter(
        (pl.col("booked_on") >= pl.col("settled_on"))
        & ((pl.col("booked_on") - pl.col("settled_on")).dt.total_days() <= days)
    )
    return candidates.filter((pl.len().over("line_id") == 1) & (pl.len().over("batch_number") == 1))


# ---- the run --------------------------------------------------------------------------------


def reconcile(sides: Sides, spec: CompiledSpec, *, as_of: dt.date) -> Result:
    """Match ``sides`` with ``spec``; every break's age is counted to ``as_of``."""
    fmt = _Fmt(_digits(sides))
    matches, breaks = _level_one(sides, spec, as_of, fmt)
    batches = _batch_keys(sides, spec)
    breaks.append(_level_two(sides, batches, spec, as_of, fmt))
    more_matches, more_breaks = _level_three(sides, batches, spec, as_of, fmt)
    matches.extend(more_matches)
    breaks.extend(more_breaks)

    match_frame = (
        pl.concat(matches, how="vertical")
        .with_columns(
            match_id=pl.format("{}:{}", pl.col("left_side"), pl.col("left_ids").list.first()),
            spec_version=pl.lit(spec.version),
        )
        .select(list(MATCH_SCHEMA))
        .sort("match_id")
    )
    break_frame = (
        pl.concat(breaks, how="vertical")
        .with_columns(
            break_id=pl.format("{}:{}", pl.col("type"), pl.col("ids").list.first().fill_null(""))
            + pl.when(pl.col("ids").list.len() > 1)
            .then(pl.format("+{}", pl.col("ids").list.len() - 1))
            .otherwise(pl.lit(""))
        )
        .select(list(BREAK_SCHEMA))
        .sort("break_id")
    )
    return Result(
        matches=match_frame,
        breaks=break_frame,
        totals=_totals(sides, batches, match_frame),
        spec_version=spec.version,
        as_of=as_of,
    )


def _amounts(sides: Sides, batches: pl.DataFrame) -> dict[SideName, pl.DataFrame]:
    """Per side, each row's id, currency and the amount that counts in the totals."""
    return {
        "transactions": sides.transactions.filter(pl.col("status") != "declined").select(
            id="txn_id", currency="currency", amount="amount_minor"
        ),
        "receipts": sides.receipts.select(
            id="receipt_id", currency="currency", amount="amount_minor"
        ),
        "batches": batches.select(
            id="batch_number", currency="currency", amount="expected_deposit"
        ),
        "deposits": sides.deposits.filter(pl.col("amount_minor") > 0).select(
            id="line_id", currency="currency", amount="amount_minor"
        ),
    }


def _totals(sides: Sides, batches: pl.DataFrame, matches: pl.DataFrame) -> pl.DataFrame:
    matched_ids = pl.concat(
        [
            matches.select(side="left_side", id="left_ids").explode("id"),
            matches.select(side="right_side", id="right_ids").explode("id"),
        ]
    ).drop_nulls("id")
    rows: list[pl.DataFrame] = []
    for side, frame in _amounts(sides, batches).items():
        ids = matched_ids.filter(pl.col("side") == side).select("id").unique()
        flagged = frame.with_columns(matched=pl.col("id").is_in(ids.get_column("id").implode()))
        rows.append(
            flagged.group_by("currency").agg(
                side=pl.lit(side),
                total_minor=pl.col("amount").sum(),
                matched_minor=pl.col("amount").filter(pl.col("matched")).sum(),
                unmatched_minor=pl.col("amount").filter(~pl.col("matched")).sum(),
            )
        )
    totals = pl.concat(rows, how="diagonal")
    return totals.select(list(TOTALS_SCHEMA)).sort(["side", "currency"])
