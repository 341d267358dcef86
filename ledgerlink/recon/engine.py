"""The matcher's public face: four checked sides and a compiled rules spec in; matches,
breaks and totals out. Pure: no database, no HTTP, no clock (``as_of`` is given).

    result = reconcile(sides, spec, as_of=date)            # a full run
    prepared = prepare(sides, spec)                        # keys computed once
    changes, prepared = reconcile_incremental(prepared, new_sides, result, spec, as_of=date)
    result = changes.apply(result)                         # or persist the changes

Three levels (``ledgerlink/recon/matching/``), all joins and group-bys over whole columns:
transactions to receipts (``receipts.py``), batches to their transactions
(``batches.py``), batches to deposits (``deposits.py``). Every row of every side ends in
exactly one match or in breaks (``ids`` on the break's side, ``other_ids`` on the
other), except declined transactions and statement debits, which carry no card money to
reconcile and are left out of the totals.

Determinism: matches are sorted by ``match_id`` and breaks by ``break_id``; both ids are
built from the rows involved (``transactions:<sale id>``, ``<type>:<first id>+<more>``),
so a rerun on the same input, in any row order, gives the same frames.

**Incremental runs** (the daily run, the run after each batch poll) touch only what can
have changed: the families (a sale with its refunds, voids, chargebacks and every receipt
naming one of them) of the new rows and of the rows in open breaks; the batches those
transactions settled in; and level 3 again in full (batches and deposits are a few
thousand rows). Previous matches and breaks outside that scope are kept as they were. The
answer equals a full run on all the rows (the property tests check it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import polars as pl

from ledgerlink.recon.breaks import BreakType
from ledgerlink.recon.frames import SIDES, SideName, Sides
from ledgerlink.recon.matching.batches import level_two
from ledgerlink.recon.matching.deposits import level_three
from ledgerlink.recon.matching.keys import Prepared, batch_key_of, prepare
from ledgerlink.recon.matching.output import (
    BREAK_SCHEMA,
    ENGINE,
    MATCH_SCHEMA,
    MoneyText,
    empty_breaks,
    empty_matches,
)
from ledgerlink.recon.matching.receipts import level_one
from ledgerlink.recon.rules import CompiledSpec

__all__ = [
    "BREAK_SCHEMA",
    "MATCH_SCHEMA",
    "TOTALS_SCHEMA",
    "Changes",
    "Prepared",
    "Result",
    "prepare",
    "reconcile",
    "reconcile_incremental",
    "reconcile_prepared",
]

TOTALS_SCHEMA: Final[dict[str, pl.DataType]] = {
    "side": pl.String(),
    "currency": pl.String(),
    "total_minor": pl.Int64(),
    "matched_minor": pl.Int64(),
    "unmatched_minor": pl.Int64(),
}

LEVEL_ONE_BREAKS: Final = frozenset(
    {
        BreakType.missing_receipt.value,
        BreakType.orphan_receipt.value,
        BreakType.receipt_for_reversed.value,
        BreakType.amount_mismatch.value,
        BreakType.duplicate_receipt.value,
    }
)
LEVEL_THREE_BREAKS: Final = frozenset(
    {
        BreakType.deposit_mismatch.value,
        BreakType.deposit_in_transit.value,
        BreakType.unknown_credit.value,
    }
)


@dataclass(frozen=True)
class Result:
    """What one run found. ``totals``: one row per side and currency, with
    ``matched_minor + unmatched_minor == total_minor``; batches count their expected
    deposit, deposits their credits."""

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
        return {side: pl.concat(parts).unique().sort() for side, parts in found.items()}


@dataclass(frozen=True)
class Changes:
    """What an incremental run changed, for the store to persist: delete the matches
    ``removed_match_ids``, insert ``added_matches``; ``breaks`` and ``totals`` are the
    whole new sets (a few thousand rows)."""

    removed_match_ids: pl.Series
    added_matches: pl.DataFrame
    breaks: pl.DataFrame
    totals: pl.DataFrame
    spec_version: str
    as_of: dt.date

    def apply(self, previous: Result) -> Result:
        """``previous`` with these changes: what a full run would have given."""
        kept = previous.matches.filter(~pl.col("match_id").is_in(self.removed_match_ids.implode()))
        return Result(  # concat + sort: merge_sorted measured slower on list columns
            matches=pl.concat([kept, self.added_matches]).sort("match_id"),
            breaks=self.breaks,
            totals=self.totals,
            spec_version=self.spec_version,
            as_of=self.as_of,
        )


def reconcile(sides: Sides, spec: CompiledSpec, *, as_of: dt.date) -> Result:
    """Match ``sides`` with ``spec``; each break's age is counted in days to ``as_of``."""
    return reconcile_prepared(prepare(sides, spec), spec, as_of=as_of)


def reconcile_prepared(prepared: Prepared, spec: CompiledSpec, *, as_of: dt.date) -> Result:
    """:func:`reconcile` on sides whose keys are already computed (:func:`prepare`)."""
    money = MoneyText(_currencies(prepared))
    matches, breaks = level_one(prepared, spec, as_of, money)
    breaks.append(level_two(prepared.transactions, prepared.batches, spec, as_of, money))
    collected = pl.collect_all([*matches, *breaks], engine=ENGINE)
    deposit_matches, deposit_breaks = level_three(
        prepared.batches, prepared.deposits, spec, as_of, money
    )
    match_frame = _sorted_matches(collected[: len(matches)] + deposit_matches)
    break_frame = _sorted_breaks(collected[len(matches) :] + deposit_breaks)
    return Result(
        matches=match_frame,
        breaks=break_frame,
        totals=_totals(prepared, match_frame),
        spec_version=spec.version,
        as_of=as_of,
    )


def reconcile_incremental(
    history: Prepared,
    new: Sides,
    previous: Result,
    spec: CompiledSpec,
    *,
    as_of: dt.date,
) -> tuple[Changes, Prepared]:
    """What changes from ``previous`` (the run over ``history``) when ``new`` rows
    arrive, re-examining only what they and the open breaks touch; applied to
    ``previous`` it is the result of a full run over both (:meth:`Changes.apply`).
    Returns the changes and the prepared sides including ``new``, for the next run.

    ``new`` holds rows with new ids (PayTrace's refunds, voids and chargebacks are new
    transactions). A row already seen whose content changed (a receipt reversed later)
    needs a full run, or removing it from ``history`` first. ``previous`` must come from
    the same spec."""
    fresh = prepare(new, spec)
    everything = history.concat(fresh)
    txns = everything.transactions

    # level 1: the families of the new rows. A family no new row touches keeps its
    # matches and breaks (only their age moves), so open breaks need no re-examination.
    seeds = [
        fresh.transactions.select(k="key"),
        fresh.transactions.select(k="orig_key"),
        fresh.receipts.select(k="key"),
    ]
    keys = pl.concat(seeds).drop_nulls().unique().get_column("k")
    family = txns.filter(
        pl.col("key").is_in(keys.implode()) | pl.col("orig_key").is_in(keys.implode())
    )
    # a refund or void named by a new receipt brings its sale's family (one hop more)
    further = family.get_column("orig_key").drop_nulls().unique()
    further = further.filter(~further.is_in(keys.implode()))
    if further.len():
        keys = pl.concat([keys, further])
        family = txns.filter(
            pl.col("key").is_in(keys.implode()) | pl.col("orig_key").is_in(keys.implode())
        )
    keys = pl.concat([keys, family.get_column("key")]).unique()  # a refund's own receipts
    kin = pl.concat([history.receipts.filter(pl.col("key").is_in(keys.implode())), fresh.receipts])
    scope = Prepared(
        transactions=family,
        receipts=kin,
        batches=everything.batches.clear(),
        deposits=everything.deposits.clear(),
    )
    money = MoneyText(_currencies(scope) | _currencies(fresh))
    lazy_matches, lazy_breaks = level_one(scope, spec, as_of, money)
    family_ids = family.get_column("txn_id")
    looked_at = pl.concat([family_ids, kin.get_column("receipt_id")]).implode()

    # level 2: the batches those transactions settled in, and new batches
    numbers = (
        pl.concat(
            [
                family.get_column("batch_number"),
                fresh.transactions.get_column("batch_number"),
                fresh.batches.get_column("batch_number"),
            ]
        )
        .drop_nulls()
        .unique()
    )
    bkeys = batch_key_of(pl.DataFrame({"batch_number": numbers}), spec).get_column("bkey")
    batches = everything.batches.filter(pl.col("bkey").is_in(bkeys.implode()))
    numbers = pl.concat([numbers, batches.get_column("batch_number")]).unique()
    in_batches = txns.filter(pl.col("batch_number").is_in(numbers.implode()))
    # voids of those sales settled elsewhere (orig_key is null on most rows: cheap first)
    voids = txns.filter(pl.col("orig_key").is_in(in_batches.get_column("key").implode())).filter(
        pl.col("kind") == "void"
    )
    lazy_breaks.append(level_two(pl.concat([in_batches, voids]), batches, spec, as_of, money))
    collected = pl.collect_all([*lazy_matches, *lazy_breaks], engine=ENGINE)
    matches, breaks = collected[: len(lazy_matches)], collected[len(lazy_matches) :]
    touched_batches = batches.get_column("batch_number").implode()

    # level 3: again in full (a few thousand rows a side)
    deposit_matches, deposit_breaks = level_three(
        everything.batches,
        everything.deposits,
        spec,
        as_of,
        MoneyText(_currencies(everything, sides=("batches", "deposits"))),
    )

    candidates = ("transactions:" + family_ids).unique().sort()
    removed = _removed_matches(previous.matches, candidates)
    aged = previous.breaks.with_columns(
        as_of_days=pl.col("as_of_days") + (as_of - previous.as_of).days
    )
    kept_breaks = aged.filter(
        (
            pl.col("type").is_in(sorted(LEVEL_ONE_BREAKS))
            & ~pl.col("ids").list.eval(pl.element().is_in(looked_at)).list.any()
            & ~pl.col("other_ids").list.eval(pl.element().is_in(looked_at)).list.any()
        )
        | (
            (pl.col("type") == BreakType.batch_ledger_mismatch.value)
            & ~pl.col("ids").list.first().is_in(touched_batches)
        )
    )
    added = _sorted_matches(matches + deposit_matches)
    changes = Changes(
        removed_match_ids=removed.get_column("match_id"),
        added_matches=added,
        breaks=_sorted_breaks([kept_breaks, *breaks, *deposit_breaks]),
        totals=_adjusted_totals(previous.totals, fresh, removed, added),
        spec_version=spec.version,
        as_of=as_of,
    )
    return changes, everything


def _removed_matches(matches: pl.DataFrame, candidates: pl.Series) -> pl.DataFrame:
    """The previous matches an incremental run replaces: level-1 matches named by one of
    ``candidates`` (sorted ``transactions:<id>``) and every level-3 match (``batches:``),
    found by binary search in the sorted ``match_id`` column, not by a scan."""
    ids = matches.get_column("match_id")
    at = ids.search_sorted(candidates, side="left")
    inside = at < ids.len()
    found = pl.DataFrame({"at": at, "want": candidates}).filter(inside)
    found = found.filter(ids.gather(found.get_column("at")) == found.get_column("want"))
    first = int(ids.search_sorted("batches:", side="left"))
    last = int(ids.search_sorted("batches;", side="left"))
    rows = pl.concat([found.get_column("at").cast(pl.Int64), pl.int_range(first, last, eager=True)])
    return matches[rows.sort()]


def _adjusted_totals(
    previous: pl.DataFrame, fresh: Prepared, removed: pl.DataFrame, added: pl.DataFrame
) -> pl.DataFrame:
    """``previous`` totals with the new rows added to the side totals and the matched
    amounts of ``removed`` matches swapped for those of ``added`` ones."""
    delta = pl.concat(
        [
            _matched(added),
            _matched(removed).with_columns(-pl.col("matched_minor")),
        ]
    )
    extra = _side_totals(fresh)
    frame = (
        pl.concat(
            [
                previous.select("side", "currency", "total_minor", "matched_minor"),
                extra.with_columns(matched_minor=pl.lit(0, dtype=pl.Int64)),
                delta.with_columns(total_minor=pl.lit(0, dtype=pl.Int64)).select(
                    "side", "currency", "total_minor", "matched_minor"
                ),
            ]
        )
        .group_by(["side", "currency"])
        .agg(pl.col("total_minor").sum(), pl.col("matched_minor").sum())
    )
    return (
        frame.with_columns(unmatched_minor=pl.col("total_minor") - pl.col("matched_minor"))
        .select(list(TOTALS_SCHEMA))
        .sort(["side", "currency"])
    )


def _sorted_matches(parts: list[pl.DataFrame]) -> pl.DataFrame:
    if not parts:
        return empty_matches()
    return pl.concat(parts).select(list(MATCH_SCHEMA)).sort("match_id")


def _sorted_breaks(parts: list[pl.DataFrame]) -> pl.DataFrame:
    if not parts:
        return empty_breaks()
    return pl.concat(parts).select(list(BREAK_SCHEMA)).sort("break_id")


def _currencies(prepared: Prepared, sides: tuple[SideName, ...] = SIDES) -> set[str]:
    found: set[str] = set()
    for side in sides:
        frame: pl.DataFrame = getattr(prepared, side)
        found.update(frame.get_column("currency").unique().to_list())
    return found


def _side_amounts(prepared: Prepared) -> dict[SideName, pl.DataFrame]:
    """Per side, the rows that count in the totals and the amount each counts for."""
    return {
        "transactions": prepared.transactions.filter(pl.col("status") != "declined").select(
            "currency", amount="amount_minor"
        ),
        "receipts": prepared.receipts.select("currency", amount="amount_minor"),
        "batches": prepared.batches.select("currency", amount="expected_deposit"),
        "deposits": prepared.deposits.filter(pl.col("amount_minor") > 0).select(
            "currency", amount="amount_minor"
        ),
    }


def _matched(matches: pl.DataFrame) -> pl.DataFrame:
    """What ``matches`` hold of each side, per currency."""
    return (
        pl.concat(
            [
                matches.select(side="left_side", currency="currency", amount="left_minor"),
                matches.select(side="right_side", currency="currency", amount="right_minor"),
            ]
        )
        .group_by(["side", "currency"])
        .agg(matched_minor=pl.col("amount").sum().cast(pl.Int64))
    )


def _side_totals(prepared: Prepared) -> pl.DataFrame:
    return pl.concat(
        [
            frame.group_by("currency").agg(
                side=pl.lit(side), total_minor=pl.col("amount").sum().cast(pl.Int64)
            )
            for side, frame in _side_amounts(prepared).items()
        ]
    ).select("side", "currency", "total_minor")


def _totals(prepared: Prepared, matches: pl.DataFrame) -> pl.DataFrame:
    """Side totals, and what the matches hold of each (each row is in one match at
    most, so a match's side amount is its rows' sum)."""
    return (
        _side_totals(prepared)
        .join(_matched(matches), on=["side", "currency"], how="left")
        .with_columns(matched_minor=pl.col("matched_minor").fill_null(0))
        .with_columns(unmatched_minor=pl.col("total_minor") - pl.col("matched_minor"))
        .select(list(TOTALS_SCHEMA))
        .sort(["side", "currency"])
    )
