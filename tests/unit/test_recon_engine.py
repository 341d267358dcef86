"""The matcher on small hand-made cases: each rule of the default spec and each break
type, with the expected answer worked out by hand in the test."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from ledgerlink.recon.breaks import BreakType
from ledgerlink.recon.engine import Result, prepare, reconcile, reconcile_incremental
from ledgerlink.recon.frames import FrameError, Sides, check, from_rows
from ledgerlink.recon.rules import CompiledSpec, default_spec, load_spec, packaged_text

DAY = dt.date(2026, 3, 2)
AS_OF = dt.date(2026, 3, 12)


def txn(
    txn_id: str,
    amount: int = 10_000,
    *,
    kind: str = "sale",
    status: str = "approved",
    batch: str | None = "1004",
    original: str | None = None,
    on: dt.date = DAY,
) -> dict[str, Any]:
    return {
        "txn_id": txn_id,
        "kind": kind,
        "status": status,
        "amount_minor": amount,
        "currency": "USD",
        "created_on": on,
        "batch_number": batch,
        "card_brand": "VISA",
        "original_txn_id": original,
    }


def receipt(
    receipt_id: str,
    txn_id: str | None,
    amount: int = 10_000,
    *,
    kind: str = "receipt",
    key: str | None = None,
    reference: str = "",
    reversed_: bool = False,
    on: dt.date = DAY,
) -> dict[str, Any]:
    return {
        "receipt_id": receipt_id,
        "ledger": "7",
        "idempotency_key": key,
        "txn_id": txn_id,
        "kind": kind,
        "amount_minor": amount,
        "currency": "USD",
        "posted_on": on,
        "reversed": reversed_,
        "customer_id": "C00042",
        "reference": reference,
    }


def batch(
    number: str, gross: int, fees: int = 0, withheld: int = 0, on: dt.date = DAY
) -> dict[str, Any]:
    return {
        "batch_number": number,
        "settled_on": on,
        "gross_minor": gross,
        "fees_minor": fees,
        "chargebacks_withheld_minor": withheld,
        "net_minor": gross - fees - withheld,
        "currency": "USD",
        "transaction_count": 1,
    }


def deposit(line: str, amount: int, reference: str, on: dt.date = DAY) -> dict[str, Any]:
    return {
        "line_id": f"abc123def456:{line}",
        "statement_id": "abc123def456",
        "booked_on": on,
        "amount_minor": amount,
        "currency": "USD",
        "reference": reference,
        "bank_ref": f"BR{line}",
    }


def run(spec: CompiledSpec | None = None, **rows: list[dict[str, Any]]) -> Result:
    return reconcile(Sides.from_rows(**rows), spec or default_spec(), as_of=AS_OF)


def breaks_of(result: Result) -> set[tuple[str, tuple[str, ...]]]:
    return {(row["type"], tuple(row["ids"])) for row in result.breaks.iter_rows(named=True)}


def deposit_breaks(result: Result) -> set[tuple[str, tuple[str, ...]]]:
    """Breaks of level 3 only: the deposit tests give batches without their transactions,
    which on their own are batch_ledger_mismatch breaks."""
    return {(kind, ids) for kind, ids in breaks_of(result) if kind != "batch_ledger_mismatch"}


def match_of(result: Result, left_id: str) -> dict[str, Any]:
    rows = result.matches.filter(pl.col("left_ids").list.contains(left_id)).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


def spec_with(old: str, new: str) -> CompiledSpec:
    text = packaged_text()
    assert old in text
    return load_spec(text.replace(old, new), "custom.yaml")


# ---- card transactions to receipts --------------------------------------------------------


def test_a_sale_and_its_receipt_match_by_transaction_id_naming_rule_and_version() -> None:
    result = run(transactions=[txn("5001")], receipts=[receipt("R1", "5001")])
    match = match_of(result, "5001")
    assert match["rule"] == "by_transaction_id"
    assert match["spec_version"] == "default@1"
    assert match["right_ids"] == ["R1"]
    assert match["amount_minor"] == 10_000
    assert result.breaks.is_empty()


def test_a_receipt_without_transaction_id_is_found_by_its_idempotency_key() -> None:
    result = run(
        transactions=[txn("5001")], receipts=[receipt("R1", None, key="paytrace:5001:sale")]
    )
    assert match_of(result, "5001")["rule"] == "by_idempotency_key"


def test_a_receipt_is_found_by_a_pt_number_in_its_reference() -> None:
    result = run(
        transactions=[txn("5001")],
        receipts=[receipt("R1", None, reference="Card payment pt# 0005001, invoice 77")],
    )
    assert match_of(result, "5001")["rule"] == "by_reference"


def test_ids_are_compared_trimmed_upper_cased_without_prefix_or_leading_zeros() -> None:
    result = run(
        transactions=[txn("5001"), txn("ab12")],
        receipts=[receipt("R1", " pt-0005001 "), receipt("R2", "TXN AB12")],
    )
    assert match_of(result, "5001")["right_ids"] == ["R1"]
    assert match_of(result, "ab12")["right_ids"] == ["R2"]
    assert result.breaks.is_empty()


def test_a_payment_split_over_three_invoices_matches_one_to_many() -> None:
    result = run(
        transactions=[txn("5001", 10_000)],
        receipts=[
            receipt("R1", "5001", 5_000),
            receipt("R2", "5001", 3_000),
            receipt("R3", "5001", 2_000),
        ],
    )
    match = match_of(result, "5001")
    assert match["rule"] == "split_over_invoices"
    assert match["right_ids"] == ["R1", "R2", "R3"]
    assert result.breaks.is_empty()


def test_an_approved_sale_with_no_receipt_is_missing_with_its_age() -> None:
    result = run(transactions=[txn("5001", 7_500, on=dt.date(2026, 3, 5))])
    row = result.breaks.row(0, named=True)
    assert (row["type"], row["ids"], row["side"]) == ("missing_receipt", ["5001"], "transactions")
    assert (row["amount_minor"], row["expected_minor"], row["actual_minor"]) == (7_500, 7_500, 0)
    assert row["as_of_days"] == 7  # 5 -> 12 March
    assert "75.00 USD" in row["detail"]


def test_a_declined_sale_needs_no_receipt_and_counts_nowhere() -> None:
    result = run(transactions=[txn("5001", status="declined")])
    assert result.breaks.is_empty()
    assert result.totals.filter(pl.col("side") == "transactions").is_empty()


def test_a_receipt_for_no_approved_transaction_is_an_orphan() -> None:
    result = run(
        transactions=[txn("5001", status="declined")],
        receipts=[receipt("R1", "5001"), receipt("R2", None, reference="cheque 12")],
    )
    assert breaks_of(result) == {("orphan_receipt", ("R1",)), ("orphan_receipt", ("R2",))}


def test_a_receipt_posted_twice_is_a_duplicate_and_the_first_still_matches() -> None:
    result = run(
        transactions=[txn("5001", 10_000)],
        receipts=[receipt("R1", "5001"), receipt("R2", "5001", on=DAY + dt.timedelta(days=1))],
    )
    assert breaks_of(result) == {("duplicate_receipt", ("R2",))}
    assert match_of(result, "5001")["right_ids"] == ["R1"]
    row = result.breaks.row(0, named=True)
    assert row["amount_minor"] == 10_000  # the second posting is what is at stake
    assert row["break_id"] == "duplicate_receipt:R2"


def test_a_receipt_of_another_amount_is_an_amount_mismatch() -> None:
    result = run(transactions=[txn("5001", 10_000)], receipts=[receipt("R1", "5001", 9_950)])
    row = result.breaks.row(0, named=True)
    assert (row["type"], row["ids"], row["other_ids"]) == ("amount_mismatch", ["R1"], ["5001"])
    assert (row["expected_minor"], row["actual_minor"], row["amount_minor"]) == (10_000, 9_950, 50)


def test_an_amount_within_the_tolerance_matches() -> None:
    spec = spec_with("amount_minor: 0", "amount_minor: 50")
    result = run(spec, transactions=[txn("5001", 10_000)], receipts=[receipt("R1", "5001", 9_950)])
    assert result.breaks.is_empty()
    match = match_of(result, "5001")
    assert (match["left_minor"], match["right_minor"]) == (10_000, 9_950)


def test_a_receipt_for_a_sale_voided_since_and_not_reversed() -> None:
    result = run(
        transactions=[txn("5001"), txn("5002", kind="void", original="5001")],
        receipts=[receipt("R1", "5001")],
    )
    row = result.breaks.row(0, named=True)
    assert (row["type"], row["ids"], row["other_ids"]) == (
        "receipt_for_reversed",
        ["R1"],
        ["5001", "5002"],
    )
    assert "voided" in row["detail"]


def test_a_receipt_for_a_sale_refunded_in_full_without_a_refund_in_the_ledger() -> None:
    result = run(
        transactions=[txn("5001"), txn("5002", kind="refund", original="5001")],
        receipts=[receipt("R1", "5001")],
    )
    assert breaks_of(result) == {("receipt_for_reversed", ("R1",))}


def test_a_voided_sale_whose_receipt_was_reversed_is_matched_not_a_break() -> None:
    result = run(
        transactions=[txn("5001"), txn("5002", kind="void", original="5001")],
        receipts=[receipt("R1", "5001", reversed_=True)],
    )
    assert result.breaks.is_empty()
    match = match_of(result, "5001")
    assert match["rule"] == "reversed_both_sides"
    assert match["left_ids"] == ["5001", "5002"]


def test_a_fully_refunded_sale_with_its_refund_receipt_is_matched_not_a_break() -> None:
    result = run(
        transactions=[txn("5001"), txn("5002", kind="refund", original="5001")],
        receipts=[
            receipt("R1", "5001"),
            receipt("R2", None, kind="refund", key="paytrace:5002:refund"),
        ],
    )
    assert result.breaks.is_empty()
    assert match_of(result, "5001")["right_ids"] == ["R1", "R2"]


def test_a_chargeback_reversed_in_the_ledger_is_matched() -> None:
    result = run(
        transactions=[txn("5001"), txn("5002", kind="chargeback", original="5001")],
        receipts=[
            receipt("R1", "5001"),
            receipt("R2", None, kind="reversal", key="paytrace:5001:chargeback"),
        ],
    )
    assert result.breaks.is_empty()
    assert match_of(result, "5001")["rule"] == "reversed_both_sides"


def test_a_sale_voided_before_any_receipt_owes_nothing() -> None:
    result = run(transactions=[txn("5001", status="voided")])
    assert result.breaks.is_empty()
    assert match_of(result, "5001")["rule"] == "voided_before_posting"


def test_a_partial_refund_matches_its_refund_receipt() -> None:
    result = run(
        transactions=[txn("5001", 10_000), txn("5002", 2_500, kind="refund", original="5001")],
        receipts=[receipt("R1", "5001"), receipt("R2", "5002", 2_500, kind="refund")],
    )
    assert result.breaks.is_empty()
    assert match_of(result, "5002")["right_ids"] == ["R2"]


def test_a_partial_refund_missing_from_the_ledger() -> None:
    result = run(
        transactions=[txn("5001", 10_000), txn("5002", 2_500, kind="refund", original="5001")],
        receipts=[receipt("R1", "5001")],
    )
    assert breaks_of(result) == {("missing_receipt", ("5002",))}


# ---- batches, deposits ----------------------------------------------------------------------


def settled_sales() -> list[dict[str, Any]]:
    return [
        txn("5001", 10_000),
        txn("5002", 5_000),
        txn("5003", 2_000, kind="refund", original="5002"),
    ]


def their_receipts() -> list[dict[str, Any]]:
    return [
        receipt("R1", "5001"),
        receipt("R2", "5002", 5_000),
        receipt("R3", "5003", 2_000, kind="refund"),
    ]


def test_a_deposit_net_of_fees_and_withheld_chargebacks_matches_its_batch() -> None:
    # gross 100 + 50 - 20 = 130.00; fees 3.90; a 10.00 chargeback withheld: 116.10
    result = run(
        transactions=settled_sales(),
        receipts=their_receipts(),
        batches=[batch("1004", 13_000, fees=390, withheld=1_000)],
        deposits=[deposit("1", 11_610, "PAYTRACE BATCH 0001004")],
    )
    assert result.breaks.is_empty()
    match = match_of(result, "1004")
    assert (match["rule"], match["right_ids"]) == ("deposit_by_batch_reference", ["abc123def456:1"])


def test_without_fee_netting_the_deposit_is_compared_with_the_gross() -> None:
    spec = spec_with("fee_netting: true", "fee_netting: false")
    result = run(
        spec,
        transactions=settled_sales(),
        receipts=their_receipts(),
        batches=[batch("1004", 13_000, fees=390)],
        deposits=[deposit("1", 12_610, "BATCH 1004")],
    )
    row = result.breaks.row(0, named=True)
    assert (row["type"], row["expected_minor"], row["actual_minor"]) == (
        "deposit_mismatch",
        13_000,
        12_610,
    )


def test_a_deposit_short_of_the_batch_net_is_a_deposit_mismatch() -> None:
    result = run(
        transactions=settled_sales(),
        receipts=their_receipts(),
        batches=[batch("1004", 13_000, fees=390)],
        deposits=[deposit("1", 12_500, "BATCH 1004")],
    )
    row = result.breaks.row(0, named=True)
    assert (row["type"], row["ids"], row["other_ids"]) == (
        "deposit_mismatch",
        ["abc123def456:1"],
        ["1004"],
    )
    assert (row["expected_minor"], row["actual_minor"], row["amount_minor"]) == (
        12_610,
        12_500,
        110,
    )


def test_a_batch_whose_gross_is_not_its_transactions_total() -> None:
    # the $75 sale sat in batch 1004 but the batch says 205.00 gross for 130.00 of sales
    result = run(
        transactions=settled_sales(),
        receipts=their_receipts(),
        batches=[batch("1004", 20_500)],
        deposits=[deposit("1", 20_500, "BATCH 1004")],
    )
    row = result.breaks.row(0, named=True)
    assert (row["type"], row["ids"], row["other_ids"]) == (
        "batch_ledger_mismatch",
        ["1004"],
        ["5001", "5002", "5003"],
    )
    assert (row["expected_minor"], row["actual_minor"], row["amount_minor"]) == (
        20_500,
        13_000,
        7_500,
    )


def test_a_voided_sale_leaves_its_batch_and_a_chargeback_does_not() -> None:
    result = run(
        transactions=[
            txn("5001", 10_000),
            txn("5002", 4_000),
            txn("5003", 4_000, kind="void", original="5002"),
            txn("5004", 6_000),
            txn("5005", 6_000, kind="chargeback", original="5004"),
        ],
        receipts=[
            receipt("R1", "5001"),
            receipt("R4", "5004", 6_000),
            receipt("R5", "5004", 6_000, kind="reversal"),
        ],
        batches=[batch("1004", 16_000, withheld=6_000)],
        deposits=[deposit("1", 10_000, "BATCH 1004")],
    )
    assert result.breaks.is_empty()


def test_one_batch_paid_in_two_deposits() -> None:
    result = run(
        transactions=settled_sales(),
        receipts=their_receipts(),
        batches=[batch("1004", 13_000)],
        deposits=[deposit("1", 10_000, "BATCH 1004"), deposit("2", 3_000, "batch#1004")],
    )
    assert result.breaks.is_empty()
    match = match_of(result, "1004")
    assert match["rule"] == "batch_in_several_deposits"
    assert match["right_ids"] == ["abc123def456:1", "abc123def456:2"]


def test_two_batches_of_one_day_paid_in_one_deposit_without_reference() -> None:
    result = run(
        batches=[batch("1004", 13_000), batch("1005", 2_000)],
        deposits=[deposit("1", 15_000, "ACH CREDIT", on=DAY + dt.timedelta(days=1))],
    )
    assert deposit_breaks(result) == set()
    match = match_of(result, "1004")
    assert (match["rule"], match["left_ids"]) == ("batches_in_one_deposit", ["1004", "1005"])


def test_a_deposit_without_reference_pairs_by_amount_within_the_days_only() -> None:
    late = DAY + dt.timedelta(days=4)  # tolerance is 3 days
    result = run(
        batches=[batch("1004", 13_000), batch("1005", 2_000)],
        deposits=[
            deposit("1", 13_000, "ACH CREDIT", on=DAY + dt.timedelta(days=3)),
            deposit("2", 2_000, "ACH CREDIT", on=late),
        ],
    )
    assert match_of(result, "1004")["rule"] == "deposit_by_amount_and_date"
    assert deposit_breaks(result) == {
        ("deposit_in_transit", ("1005",)),
        ("unknown_credit", ("abc123def456:2",)),
    }


def test_two_batches_of_the_same_net_are_not_guessed_between() -> None:
    result = run(
        batches=[batch("1004", 13_000), batch("1005", 13_000)],
        deposits=[deposit("1", 13_000, "ACH CREDIT")],
    )
    assert {kind for kind, _ in deposit_breaks(result)} == {"deposit_in_transit", "unknown_credit"}


def test_a_settled_batch_not_yet_on_a_statement_is_in_transit_with_its_age() -> None:
    result = run(
        transactions=[txn("5001", 13_000)],
        receipts=[receipt("R1", "5001", 13_000)],
        batches=[batch("1004", 13_000, fees=390, on=dt.date(2026, 3, 9))],
    )
    row = result.breaks.row(0, named=True)
    assert (row["type"], row["ids"], row["expected_minor"], row["as_of_days"]) == (
        "deposit_in_transit",
        ["1004"],
        12_610,
        3,
    )


def test_a_credit_matching_nothing_is_unknown_and_debits_are_left_out() -> None:
    result = run(deposits=[deposit("1", 4_200, "WIRE FROM ACME"), deposit("2", -1_500, "FEES")])
    assert breaks_of(result) == {("unknown_credit", ("abc123def456:1",))}
    totals = result.totals.filter(pl.col("side") == "deposits").row(0, named=True)
    assert totals["total_minor"] == 4_200


# ---- totals, determinism, incremental ----------------------------------------------------


def test_totals_split_each_side_into_matched_and_unmatched_exactly() -> None:
    result = run(
        transactions=[txn("5001", 10_000), txn("5002", 2_500)],
        receipts=[receipt("R1", "5001"), receipt("R9", "9999", 700)],
    )
    totals = {row["side"]: row for row in result.totals.iter_rows(named=True)}
    assert (
        totals["transactions"]["total_minor"],
        totals["transactions"]["matched_minor"],
        totals["transactions"]["unmatched_minor"],
    ) == (12_500, 10_000, 2_500)
    assert (
        totals["receipts"]["total_minor"],
        totals["receipts"]["matched_minor"],
        totals["receipts"]["unmatched_minor"],
    ) == (10_700, 10_000, 700)


def test_a_rerun_in_another_row_order_gives_the_same_matches_breaks_and_ids() -> None:
    rows = {
        "transactions": [*settled_sales(), txn("6001"), txn("6002", kind="void", original="6001")],
        "receipts": [*their_receipts(), receipt("R6", "6001"), receipt("R7", "5001")],
        "batches": [batch("1004", 13_001)],
        "deposits": [deposit("1", 13_001, "BATCH 1004"), deposit("2", 99, "?")],
    }
    first = run(**rows)
    second = run(**{side: list(reversed(listed)) for side, listed in rows.items()})
    assert first.matches.equals(second.matches)
    assert first.breaks.equals(second.breaks)
    assert first.totals.equals(second.totals)


def test_an_incremental_run_gives_what_a_full_run_gives() -> None:
    spec = default_spec()
    history = Sides.from_rows(
        transactions=[txn("5001"), txn("5002")],
        receipts=[receipt("R1", "5001"), receipt("R9", "7001")],
        batches=[batch("1004", 20_000)],
    )
    new = Sides.from_rows(
        transactions=[txn("7001", batch="1005"), txn("5003", kind="refund", original="5001")],
        receipts=[receipt("R2", "5002"), receipt("R1b", "5001", on=DAY + dt.timedelta(days=2))],
        deposits=[deposit("1", 20_000, "BATCH 1004")],
    )
    previous = reconcile(history, spec, as_of=AS_OF)
    changes, _ = reconcile_incremental(prepare(history, spec), new, previous, spec, as_of=AS_OF)
    incremental = changes.apply(previous)
    full = reconcile(history.concat(new), spec, as_of=AS_OF)
    assert incremental.matches.equals(full.matches)
    assert incremental.breaks.equals(full.breaks)
    assert incremental.totals.equals(full.totals)


def test_an_incremental_void_brings_the_sales_earlier_refund_and_its_receipt() -> None:
    spec = default_spec()
    history = Sides.from_rows(
        transactions=[txn("5001"), txn("5002", 2_000, kind="refund", original="5001")],
        receipts=[receipt("R1", "5001"), receipt("R2", "5002", 2_000, kind="refund")],
    )
    new = Sides.from_rows(
        transactions=[txn("5003", kind="void", original="5001")],
        receipts=[receipt("R3", None, kind="reversal", key="paytrace:5001:void")],
    )
    previous = reconcile(history, spec, as_of=AS_OF - dt.timedelta(days=2))
    changes, _ = reconcile_incremental(prepare(history, spec), new, previous, spec, as_of=AS_OF)
    full = reconcile(history.concat(new), spec, as_of=AS_OF)
    assert match_of(full, "5001")["right_ids"] == ["R1", "R2", "R3"]
    assert changes.apply(previous).matches.equals(full.matches)
    assert changes.breaks.equals(full.breaks)


def test_an_incremental_run_with_text_ids_after_numeric_ones() -> None:
    spec = default_spec()
    history = Sides.from_rows(transactions=[txn("5001")], receipts=[receipt("R1", "5001")])
    new = Sides.from_rows(
        transactions=[txn("AB-12")],
        receipts=[receipt("R2", "ab-12"), receipt("R3", "5001", on=DAY + dt.timedelta(days=1))],
    )
    previous = reconcile(history, spec, as_of=AS_OF)
    changes, prepared = reconcile_incremental(
        prepare(history, spec), new, previous, spec, as_of=AS_OF
    )
    full = reconcile(history.concat(new), spec, as_of=AS_OF)
    assert changes.apply(previous).matches.equals(full.matches)
    assert breaks_of(full) == {("duplicate_receipt", ("R3",))}
    assert changes.breaks.equals(full.breaks)
    assert prepared.transactions.schema["key"] == pl.String()


# ---- the frames ---------------------------------------------------------------------------


def test_a_float_amount_is_refused_naming_the_column() -> None:
    with pytest.raises(FrameError) as caught:
        from_rows("transactions", [txn("5001", 12.5)])  # type: ignore[arg-type]
    assert caught.value.column == "amount_minor"
    assert "minor units" in str(caught.value)


def test_a_float_column_is_refused_naming_the_column() -> None:
    frame = pl.DataFrame([receipt("R1", "5001")]).with_columns(
        pl.col("amount_minor").cast(pl.Float64)
    )
    with pytest.raises(FrameError, match=r"receipts\.amount_minor: is a floating-point"):
        check("receipts", frame)


def test_a_missing_column_is_refused_by_name() -> None:
    row = batch("1004", 100)
    del row["fees_minor"]
    with pytest.raises(FrameError, match=r"batches\.fees_minor: is missing"):
        from_rows("batches", [row])


def test_an_unknown_kind_is_refused_with_its_row_and_what_is_allowed() -> None:
    with pytest.raises(FrameError, match=r"row 2.*allowed: chargeback, refund, sale, void"):
        from_rows("transactions", [txn("1"), txn("2", kind="capture")])


def test_every_break_type_has_a_label_a_fix_and_a_side() -> None:
    for kind in BreakType:
        assert kind.label
        assert kind.fix
        assert kind.side in {"transactions", "receipts", "batches", "deposits"}
