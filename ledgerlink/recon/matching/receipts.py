"""Level 1: card transactions to ledger receipts.

A sale expects receipts (kind ``receipt``) naming it and summing to its amount: one (1:1,
the key rule that found it is the match's rule) or several (1:N, a payment split over
invoices). A refund expects a refund receipt naming the refund. A sale voided, charged
back or fully refunded in PayTrace is looked at as one family with its reversals, on both
sides: matched when the ledger reversed it too (the receipt marked reversed, a reversal
receipt, or refund receipts covering it), ``receipt_for_reversed`` when it did not, and
nothing owed when it was voided before any receipt was posted.

Receipts are grouped once by (key, kind); a group joins its transaction with a full join,
so a group without one (an orphan) and a transaction without receipts (missing) fall out
of the same join. Only groups of more than one receipt are looked at row by row (to tell
a split payment from a duplicate).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from ledgerlink.recon.breaks import BreakType
from ledgerlink.recon.matching.keys import Prepared
from ledgerlink.recon.matching.output import (
    ENGINE,
    IDS,
    NO_IDS,
    MoneyText,
    break_rows,
    match_rows,
)
from ledgerlink.recon.rules import CompiledSpec

_REVERSAL_KINDS = ["void", "chargeback"]


def sale_state(txns: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    """``(sales, lone_reversals, refunds)``: each sale (not declined) with its reversals
    (``gv_*``) and refunds (``gr_*``) in PayTrace and ``reversed_gw``; void/chargeback rows
    naming no known sale; the refund rows."""
    live = txns.filter(pl.col("status") != "declined")
    reversals = (
        live.filter(pl.col("kind").is_in(_REVERSAL_KINDS))
        .group_by("orig_key")
        .agg(
            gv_ids=pl.col("txn_id"),
            gv_total=pl.col("amount_minor").sum(),
            has_void=(pl.col("kind") == "void").any(),
        )
        .rename({"orig_key": "rkey"})
    )
    refunds = live.filter(pl.col("kind") == "refund")
    refunded = (
        refunds.filter(pl.col("orig_key").is_not_null())
        .group_by("orig_key")
        .agg(refunded=pl.col("amount_minor").sum(), gr_ids=pl.col("txn_id"))
    )
    sales = live.filter(pl.col("kind") == "sale")
    with_reversals = sales.join(
        reversals, left_on="key", right_on="rkey", how="full", coalesce=False
    )
    lone = with_reversals.filter(pl.col("txn_id").is_null()).select(orig_key="rkey")
    lone_rows = live.filter(pl.col("kind").is_in(_REVERSAL_KINDS)).join(
        lone, on="orig_key", how="semi", nulls_equal=True
    )
    state = (
        with_reversals.filter(pl.col("txn_id").is_not_null())
        .drop("rkey")
        .join(refunded, left_on="key", right_on="orig_key", how="left")
        .with_columns(
            has_void=pl.col("has_void").fill_null(False),
            reversed_gw=(pl.col("status") == "voided")
            | pl.col("gv_ids").is_not_null()
            | (pl.col("refunded").fill_null(0) >= pl.col("amount_minor")),
        )
    )
    return _cached(state), _cached(lone_rows), _cached(refunds)


def _cached(frame: pl.LazyFrame) -> pl.LazyFrame:
    """``frame`` computed now: it feeds several outputs, which would each compute it."""
    return frame.collect(engine=ENGINE).lazy()


def _listed(many: str) -> pl.Expr:
    """A group's receipt ids as a list: ``many`` for a group of several, ``[r_id]`` for a
    group of one (kept as a plain column through the joins: a million one-item lists are
    costly to carry), ``[]`` where no group joined."""
    return (
        pl.when(pl.col(many).is_not_null())
        .then(pl.col(many))
        .when(pl.col("r_id").is_not_null())
        .then(pl.concat_list(pl.col("r_id")))
        .otherwise(NO_IDS)
    )


def _grouped(keyed: pl.LazyFrame) -> pl.LazyFrame:
    """Receipts of one kind, with a key, one row per key; for keys with several receipts,
    which are first of their amount (``first_ids``) and which repeat one (``dup_ids``).

    Nearly every key has one receipt: those rows pass as they are (a duplicate check, no
    aggregation); only the few keys with several are grouped."""
    flagged = _cached(keyed.with_columns(_many=pl.col("key").is_duplicated()))
    single = flagged.filter(~pl.col("_many")).select(
        "key",
        n=pl.lit(1, dtype=pl.UInt32),
        total=pl.col("amount_minor"),
        r_id=pl.col("receipt_id"),
        any_reversed=pl.col("reversed"),
        r_currency=pl.col("currency"),
        r_currencies=pl.lit(1),
        r_rule=pl.col("key_rule"),
        r_first_on=pl.col("posted_on"),
        distinct_total=pl.col("amount_minor"),
        r_ids=pl.lit(None, dtype=IDS),
        first_ids=pl.lit(None, dtype=IDS),
        dup_ids=pl.lit(None, dtype=IDS),
        r_dup_on=pl.lit(None, dtype=pl.Date()),
    )
    rows = (
        flagged.filter(pl.col("_many"))
        .sort(["key", "amount_minor", "posted_on", "receipt_id"])
        .with_columns(dup=pl.int_range(pl.len()).over(["key", "amount_minor"]) > 0)
    )
    several = rows.group_by("key").agg(
        n=pl.len().cast(pl.UInt32),
        total=pl.col("amount_minor").sum(),
        r_id=pl.col("receipt_id").min(),
        any_reversed=pl.col("reversed").any(),
        r_currency=pl.col("currency").min(),
        r_currencies=pl.when(pl.col("currency").min() == pl.col("currency").max())
        .then(pl.lit(1))
        .otherwise(pl.lit(2)),
        r_rule=pl.col("key_rule").min(),
        r_first_on=pl.col("posted_on").min(),
        distinct_total=pl.col("amount_minor").filter(~pl.col("dup")).sum(),
        r_ids=pl.col("receipt_id").sort(),
        first_ids=pl.col("receipt_id").filter(~pl.col("dup")).sort(),
        dup_ids=pl.col("receipt_id").filter(pl.col("dup")).sort(),
        r_dup_on=pl.col("posted_on").filter(pl.col("dup")).min(),
    )
    return pl.concat([single, several], how="vertical_relaxed")


def level_one(
    prepared: Prepared, spec: CompiledSpec, as_of: dt.date, money: MoneyText
) -> tuple[list[pl.LazyFrame], list[pl.LazyFrame]]:
    rules = spec.spec.receipts
    version = spec.version
    receipts = prepared.receipts.lazy()
    state, lone, refunds = sale_state(prepared.transactions.lazy())
    keyed = receipts.filter(pl.col("key").is_not_null())
    r_sales, r_reversals, r_refunds = (
        _cached(_grouped(keyed.filter(pl.col("kind") == kind)))
        for kind in ("receipt", "reversal", "refund")
    )
    r_reversals = r_reversals.select("key", lrev_ids=_listed("r_ids"), lrev_total="total")

    matches: list[pl.LazyFrame] = []
    breaks: list[pl.LazyFrame] = []
    orphan_ids: list[pl.LazyFrame] = []

    sales = _cached(state.join(r_sales, on="key", how="full", coalesce=True))
    orphan_ids.append(sales.filter(pl.col("txn_id").is_null()).select(ids=_listed("r_ids")))
    sales = sales.filter(pl.col("txn_id").is_not_null())
    gone = sales.filter(pl.col("reversed_gw"))
    standing = sales.filter(~pl.col("reversed_gw"))

    # refunds: of a gone sale (part of its family) or standing on their own
    gone_keys = gone.select(orig_key="key")
    refunds_gone = refunds.join(gone_keys, on="orig_key", how="semi")
    refunds_standing = refunds.join(gone_keys, on="orig_key", how="anti")
    lref = (
        refunds_gone.select("key", "orig_key")
        .join(r_refunds, on="key", how="inner")
        .with_columns(ids=_listed("r_ids"))
        .group_by("orig_key")
        .agg(lref_ids=pl.col("ids").explode(), lref_total=pl.col("total").sum())
    )
    refund_groups = r_refunds.join(refunds_gone.select("key"), on="key", how="anti")
    standing_refunds = _cached(
        refunds_standing.join(refund_groups, on="key", how="full", coalesce=True)
    )
    orphan_ids.append(
        standing_refunds.filter(pl.col("txn_id").is_null()).select(ids=_listed("r_ids"))
    )
    standing_refunds = standing_refunds.filter(pl.col("txn_id").is_not_null())

    # -- families reversed in PayTrace
    gone = (
        gone.join(r_reversals, on="key", how="left")
        .join(lref, left_on="key", right_on="orig_key", how="left")
        .with_columns(
            txn_ids=pl.concat_list(
                pl.col("txn_id"),
                pl.col("gv_ids").fill_null(NO_IDS),
                pl.col("gr_ids").fill_null(NO_IDS),
            ),
            txn_total=pl.col("amount_minor")
            + pl.col("gv_total").fill_null(0)
            + pl.col("refunded").fill_null(0),
            ledger_ids=pl.concat_list(
                _listed("r_ids"),
                pl.col("lrev_ids").fill_null(NO_IDS),
                pl.col("lref_ids").fill_null(NO_IDS),
            ),
            ledger_total=pl.col("total").fill_null(0)
            + pl.col("lrev_total").fill_null(0)
            + pl.col("lref_total").fill_null(0),
            reversed_ledger=pl.col("any_reversed").fill_null(False)
            | pl.col("lrev_ids").is_not_null()
            | (pl.col("lref_total").fill_null(0) >= pl.col("total").fill_null(0)),
        )
    )
    gone = _cached(gone)
    no_receipt = gone.filter(pl.col("n").is_null())
    # a reversal or refund receipt for a sale that was never received: nothing to reverse
    orphan_ids.append(
        no_receipt.filter(pl.col("ledger_ids").list.len() > 0).select(ids="ledger_ids")
    )
    with_receipt = gone.filter(pl.col("n").is_not_null())
    known = with_receipt.select("key")
    orphan_ids.append(r_reversals.join(known, on="key", how="anti").select(ids="lrev_ids"))

    def family_match(frame: pl.LazyFrame, rule: str, right: pl.Expr, right_minor: pl.Expr) -> None:
        matches.append(
            match_rows(
                frame,
                rule=pl.lit(rule),
                left_side="transactions",
                left_first=pl.col("txn_id"),
                left_ids=pl.col("txn_ids").list.sort(),
                right_side="receipts",
                right_ids=right.list.sort(),
                amount=pl.col("amount_minor"),
                currency=pl.col("currency"),
                left_minor=pl.col("txn_total"),
                right_minor=right_minor,
                spec_version=version,
            )
        )

    if rules.voided_before_posting.enabled:
        family_match(no_receipt, rules.voided_before_posting.rule, NO_IDS, pl.lit(0))
    else:
        breaks.append(_missing(no_receipt, as_of, money, ids=pl.col("txn_ids")))
    if rules.reversed_both_sides.enabled:
        family_match(
            with_receipt.filter(pl.col("reversed_ledger")),
            rules.reversed_both_sides.rule,
            pl.col("ledger_ids"),
            pl.col("ledger_total"),
        )
        still = with_receipt.filter(~pl.col("reversed_ledger"))
    else:
        still = with_receipt
    what = (
        pl.when(pl.col("status") == "voided")
        .then(pl.lit("voided"))
        .when(pl.col("has_void"))
        .then(pl.lit("voided"))
        .when(pl.col("gv_ids").is_not_null())
        .then(pl.lit("charged back"))
        .otherwise(pl.lit("refunded in full"))
    )
    breaks.append(
        break_rows(
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
                money(pl.col("total"), pl.col("r_currency")),
            ),
        )
    )

    # -- sales and refunds that stand: keyed 1:1 or 1:N
    for frame in (standing, standing_refunds):
        found_m, found_b = _keyed(frame, spec, as_of, money)
        matches.extend(found_m)
        breaks.extend(found_b)

    # -- void/chargeback rows naming no sale PayTrace gave: nothing to post
    matches.append(
        match_rows(
            lone,
            rule=pl.lit(rules.voided_before_posting.rule),
            left_side="transactions",
            left_first=pl.col("txn_id"),
            left_ids=pl.concat_list(pl.col("txn_id")),
            right_side="receipts",
            right_ids=NO_IDS,
            amount=pl.col("amount_minor"),
            currency=pl.col("currency"),
            left_minor=pl.col("amount_minor"),
            right_minor=pl.lit(0),
            spec_version=version,
        )
    )

    # -- receipts nothing above accounted for
    orphan_list = pl.concat(orphan_ids).explode("ids").drop_nulls("ids")
    orphans = pl.concat(
        [
            receipts.filter(pl.col("key").is_null()),
            receipts.join(orphan_list.select(receipt_id="ids"), on="receipt_id", how="semi"),
        ]
    )
    breaks.append(
        break_rows(
            orphans,
            BreakType.orphan_receipt,
            as_of,
            ids=pl.concat_list(pl.col("receipt_id")),
            other_side="transactions",
            other_ids=NO_IDS,
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
                    money(pl.col("amount_minor"), pl.col("currency")),
                )
            )
            .otherwise(
                pl.format(
                    "Receipt {} ({}) of {} is for PayTrace transaction {}, which has no "
                    "approved {} to match it.",
                    pl.col("receipt_id"),
                    pl.col("kind"),
                    money(pl.col("amount_minor"), pl.col("currency")),
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


def _missing(
    frame: pl.LazyFrame, as_of: dt.date, money: MoneyText, *, ids: pl.Expr
) -> pl.LazyFrame:
    return break_rows(
        frame,
        BreakType.missing_receipt,
        as_of,
        ids=ids,
        other_side="receipts",
        other_ids=NO_IDS,
        expected=pl.col("amount_minor"),
        actual=pl.lit(0),
        currency=pl.col("currency"),
        on=pl.col("created_on"),
        detail=pl.format(
            "PayTrace {} {} of {} on {} was approved but no {} is in the ledger.",
            pl.col("kind"),
            pl.col("txn_id"),
            money(pl.col("amount_minor"), pl.col("currency")),
            pl.col("created_on"),
            pl.when(pl.col("kind") == "refund").then(pl.lit("refund")).otherwise(pl.lit("receipt")),
        ),
    )


def _keyed(
    frame: pl.LazyFrame, spec: CompiledSpec, as_of: dt.date, money: MoneyText
) -> tuple[list[pl.LazyFrame], list[pl.LazyFrame]]:
    """Transactions with the receipts naming them: match, missing, duplicate or amounts
    that differ."""
    rules = spec.spec
    tol = rules.tolerance.amount_minor
    split = rules.receipts.split_payments
    same_currency = (pl.col("r_currencies") == 1) & (pl.col("r_currency") == pl.col("currency"))
    exact = same_currency & ((pl.col("total") - pl.col("amount_minor")).abs() <= tol)
    deduped = (
        same_currency
        & (pl.col("n") > 1)
        & ((pl.col("distinct_total") - pl.col("amount_minor")).abs() <= tol)
    )
    if not split.enabled:
        exact = exact & (pl.col("n") == 1)
        deduped = deduped & (pl.col("first_ids").list.len().fill_null(1) == 1)
    missing = frame.filter(pl.col("n").is_null())
    found = frame.filter(pl.col("n").is_not_null()).with_columns(
        outcome=pl.when(exact).then(pl.lit(0)).when(deduped).then(pl.lit(1)).otherwise(pl.lit(2))
    )
    found = _cached(found)
    good = found.filter(pl.col("outcome") == 0)
    doubled = found.filter(pl.col("outcome") == 1)
    mismatched = found.filter(pl.col("outcome") == 2)

    def keyed_match(
        rows: pl.LazyFrame, several: pl.Expr, ids: pl.Expr, right_minor: str
    ) -> pl.LazyFrame:
        return match_rows(
            rows,
            rule=pl.when(several).then(pl.lit(split.rule)).otherwise(pl.col("r_rule")),
            left_side="transactions",
            left_first=pl.col("txn_id"),
            left_ids=pl.concat_list(pl.col("txn_id")),
            right_side="receipts",
            right_ids=ids,
            amount=pl.col("amount_minor"),
            currency=pl.col("currency"),
            left_minor=pl.col("amount_minor"),
            right_minor=pl.col(right_minor),
            spec_version=spec.version,
        )

    matches = [
        keyed_match(good, pl.col("n") > 1, _listed("r_ids"), "total"),
        keyed_match(
            doubled, pl.col("first_ids").list.len() > 1, pl.col("first_ids"), "distinct_total"
        ),
    ]
    word = pl.when(pl.col("kind") == "refund").then(pl.lit("refunds")).otherwise(pl.lit("receipts"))
    breaks = [
        _missing(missing, as_of, money, ids=pl.concat_list(pl.col("txn_id"))),
        break_rows(
            doubled,
            BreakType.duplicate_receipt,
            as_of,
            ids=pl.col("dup_ids"),
            other_side="transactions",
            other_ids=pl.concat_list(pl.col("txn_id")),
            expected=pl.col("distinct_total"),
            actual=pl.col("total"),
            currency=pl.col("currency"),
            on=pl.col("r_dup_on"),
            detail=pl.format(
                "PayTrace {} {} of {} was posted to the ledger more than once: {} {} "
                "({}) where {} was expected.",
                pl.col("kind"),
                pl.col("txn_id"),
                money(pl.col("amount_minor"), pl.col("currency")),
                pl.col("n"),
                word,
                pl.col("r_ids").cast(IDS).list.join(", "),
                money(pl.col("distinct_total"), pl.col("currency")),
            ),
        ),
        break_rows(
            mismatched,
            BreakType.amount_mismatch,
            as_of,
            ids=_listed("r_ids"),
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
                money(pl.col("amount_minor"), pl.col("currency")),
                word,
                money(pl.col("total"), pl.col("r_currency")),
            ),
        ),
    ]
    return matches, breaks
