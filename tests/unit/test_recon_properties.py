"""Properties of the matcher on generated data with injected breaks of every type
(``tests/support/recon_data.py``, shared with ``bench/recon.py``)."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerlink.recon.engine import Result, prepare, reconcile, reconcile_incremental
from ledgerlink.recon.frames import ID_COLUMN, SIDES, Sides
from ledgerlink.recon.rules import default_spec
from tests.support.recon_data import Generated, expected_breaks, generate

SPEC = default_spec()
PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def datasets(draw: st.DrawFn) -> Generated:
    return generate(
        draw(st.integers(0, 120)),
        seed=draw(st.integers(0, 2**32 - 1)),
        break_rate=draw(st.sampled_from([0.0, 0.01, 0.04, 0.08])),
        per_batch=draw(st.integers(1, 9)),
        batches_per_day=draw(st.integers(1, 4)),
    )


def _row_amounts(sides: Sides) -> dict[str, pl.DataFrame]:
    """Each side's counted rows: id, currency, amount (as the totals define them)."""
    nets = sides.batches.select(
        id="batch_number",
        currency="currency",
        amount=pl.col("gross_minor") - pl.col("fees_minor") - pl.col("chargebacks_withheld_minor"),
    )
    return {
        "transactions": sides.transactions.filter(pl.col("status") != "declined").select(
            id="txn_id", currency="currency", amount="amount_minor"
        ),
        "receipts": sides.receipts.select(
            id="receipt_id", currency="currency", amount="amount_minor"
        ),
        "batches": nets,
        "deposits": sides.deposits.filter(pl.col("amount_minor") > 0).select(
            id="line_id", currency="currency", amount="amount_minor"
        ),
    }


def _named(frame: pl.DataFrame, side_col: str, ids_col: str) -> pl.DataFrame:
    return frame.select(side=side_col, id=ids_col).explode("id").drop_nulls("id")


@PROPERTY
@given(datasets())
def test_every_injected_break_is_found_with_its_type_and_no_other(data: Generated) -> None:
    result = reconcile(data.sides, SPEC, as_of=data.as_of)
    found = expected_breaks(result.breaks)
    assert found - data.expected == set(), "false breaks"
    assert data.expected - found == set(), "injected breaks not found"


@PROPERTY
@given(datasets())
def test_matched_and_unmatched_amounts_sum_exactly_to_each_sides_total(data: Generated) -> None:
    result = reconcile(data.sides, SPEC, as_of=data.as_of)
    in_matches = pl.concat(
        [
            _named(result.matches, "left_side", "left_ids"),
            _named(result.matches, "right_side", "right_ids"),
        ]
    )
    in_breaks = pl.concat(
        [_named(result.breaks, "side", "ids"), _named(result.breaks, "other_side", "other_ids")]
    )
    totals = {(r["side"], r["currency"]): r for r in result.totals.iter_rows(named=True)}
    for side, rows in _row_amounts(data.sides).items():
        matched_ids = in_matches.filter(pl.col("side") == side).get_column("id")
        assert matched_ids.is_duplicated().sum() == 0, f"a {side} row is in two matches"
        flagged = rows.with_columns(matched=pl.col("id").is_in(matched_ids.implode()))
        unmatched = flagged.filter(~pl.col("matched"))
        # every row not matched is named by a break
        named = in_breaks.filter(pl.col("side") == side).get_column("id")
        assert unmatched.filter(~pl.col("id").is_in(named.implode())).is_empty()
        if rows.is_empty():
            assert not any(key[0] == side for key in totals)
            continue
        row = totals[(side, "USD")]
        assert row["total_minor"] == rows.get_column("amount").sum()
        assert row["matched_minor"] == flagged.filter(pl.col("matched")).get_column("amount").sum()
        assert row["unmatched_minor"] == unmatched.get_column("amount").sum()
        assert row["matched_minor"] + row["unmatched_minor"] == row["total_minor"]


def _same(first: Result, second: Result) -> None:
    assert first.matches.equals(second.matches)
    assert first.breaks.equals(second.breaks)
    assert first.totals.equals(second.totals)


@PROPERTY
@given(datasets(), st.integers(0, 2**16))
def test_a_rerun_in_any_row_order_gives_the_same_result(data: Generated, seed: int) -> None:
    first = reconcile(data.sides, SPEC, as_of=data.as_of)
    shuffled = Sides(
        **{
            side: data.sides.side(side).sample(fraction=1.0, shuffle=True, seed=seed)
            for side in SIDES
        }
    )
    _same(first, reconcile(shuffled, SPEC, as_of=data.as_of))


@PROPERTY
@given(datasets(), st.floats(0.0, 1.0))
def test_an_incremental_run_equals_a_full_run(data: Generated, cut: float) -> None:
    history: dict[str, pl.DataFrame] = {}
    new: dict[str, pl.DataFrame] = {}
    for side in SIDES:
        frame = data.sides.side(side)
        keep = int(frame.height * cut)
        history[side], new[side] = frame.head(keep), frame.slice(keep)
    old, fresh = Sides(**history), Sides(**new)
    previous = reconcile(old, SPEC, as_of=data.as_of - dt.timedelta(days=1))  # yesterday
    changes, _ = reconcile_incremental(prepare(old, SPEC), fresh, previous, SPEC, as_of=data.as_of)
    incremental = changes.apply(previous)
    _same(incremental, reconcile(data.sides, SPEC, as_of=data.as_of))


def test_the_id_columns_are_what_the_breaks_name() -> None:
    assert ID_COLUMN == {
        "transactions": "txn_id",
        "receipts": "receipt_id",
        "batches": "batch_number",
        "deposits": "line_id",
    }
