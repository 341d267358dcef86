"""The expected card fee schedule: the same fee as the processor (the sandbox) charges, to
the cent; chargebacks withheld once each; settings refused with the field named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.recon.fees import (
    BrandFee,
    batch_fees,
    brand_key,
    checked_schedule,
    default_schedule,
    parse_rate,
    withheld_by_batch,
)
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.sandbox.paytrace.settlement import DEFAULT_CARD_FEES, CardFee, FeeSchedule


@given(
    bp=st.integers(min_value=0, max_value=10_000),
    fixed=st.integers(min_value=0, max_value=10_000),
    amount=st.integers(min_value=0, max_value=10**12),
)
def test_a_sale_pays_what_the_processor_charges(bp: int, fixed: int, amount: int) -> None:
    processor = CardFee(Decimal(bp) / 100, fixed)
    assert BrandFee(bp, fixed).of(amount) == processor.of(amount)


@given(
    sales=st.lists(
        st.tuples(
            st.sampled_from(["Visa", "MasterCard", "AMEX", "Discover", "JCB", "Unknown"]),
            st.integers(min_value=1, max_value=10**8),
            st.sampled_from(["sale", "refund"]),
        ),
        max_size=40,
    )
)
def test_the_default_schedule_agrees_with_the_sandbox_batch_by_batch(
    sales: list[tuple[str, int, str]],
) -> None:
    sandbox = FeeSchedule.from_config(DEFAULT_CARD_FEES)
    expected = sum(sandbox.fee(brand, amount) for brand, amount, kind in sales if kind == "sale")
    rows = [
        {"card_brand": brand_key(brand), "amount_minor": amount, "kind": kind, "status": "approved"}
        for brand, amount, kind in sales
    ]
    assert batch_fees(rows, default_schedule()) == expected


def test_fees_round_half_up_per_sale() -> None:
    visa = BrandFee(180, 10)
    assert visa.of(2_500) == 45 + 10  # 45.0
    assert visa.of(2_525) == 45 + 10  # 45.45 → 45
    assert visa.of(2_528) == 46 + 10  # 45.504 → 46
    assert BrandFee(250, 0).of(100) == 3  # 2.5 → 3 (half up)
    # two sales are rounded on their own: 0.5 + 0.5 → 1 + 1, not round(1.0) = 1
    assert (
        batch_fees(
            [{"card_brand": "x", "amount_minor": 100, "kind": "sale", "status": "approved"}] * 2,
            checked_schedule({"other": {"percent_bp": 50, "fixed_minor": 0}}),
        )
        == 2
    )


def test_brands_are_named_as_the_gateway_writes_them() -> None:
    assert brand_key("AMEX") == brand_key("American Express") == "amex"
    assert brand_key("MasterCard") == "mastercard"
    assert brand_key("") == brand_key("Unknown") == "other"


@given(
    days=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=8, unique=True),
    chargebacks=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=40), st.integers(min_value=1, max_value=10**6)
        ),
        max_size=10,
    ),
)
def test_every_chargeback_is_withheld_once_from_the_next_batch(
    days: list[int], chargebacks: list[tuple[int, int]]
) -> None:
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    batches = [(str(1000 + i), start + timedelta(days=d)) for i, d in enumerate(days)]
    held = withheld_by_batch(batches, [(start + timedelta(days=d), amt) for d, amt in chargebacks])
    last = max(days)
    assert sum(held.values()) == sum(amt for d, amt in chargebacks if d <= last)
    for d, amount in chargebacks:
        if d <= last:
            first = min(on for _, on in batches if on >= start + timedelta(days=d))
            number = next(n for n, on in batches if on == first)
            assert held[number] >= amount


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"visa": {"percent_bp": -1}}, "fee_schedule.visa.percent_bp"),
        ({"visa": {"percent_bp": 1.8}}, "fee_schedule.visa.percent_bp"),
        ({"visa": {"fixed_minor": "10"}}, "fee_schedule.visa.fixed_minor"),
        ({"visa": {"percent": 180}}, "fee_schedule.visa"),
        ({"visa": "1.80%"}, "fee_schedule.visa"),
        ([], "fee_schedule"),
    ],
)
def test_a_bad_schedule_is_refused_with_its_field(body: object, field: str) -> None:
    with pytest.raises(ReconRefused) as refused:
        checked_schedule(body)
    assert refused.value.field == field


def test_rates_are_written_as_the_sandbox_writes_them() -> None:
    assert parse_rate("1.80%+0.10", "f") == BrandFee(180, 10)
    assert parse_rate("2.9%", "f") == BrandFee(290, 0)
    assert parse_rate("0.25", "f") == BrandFee(0, 25)
    with pytest.raises(ReconRefused) as refused:
        parse_rate("lots", "fee_schedule.visa")
    assert refused.value.field == "fee_schedule.visa"


def test_a_chargeback_read_in_the_second_a_batch_settled_waits_for_the_next_batch() -> None:
    """PayTrace stamps a batch to the second: a chargeback read at 12:00:00.4 when the
    batch says it settled "at 12:00:00" is taken to be after it, never counted twice."""
    settled = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    read = settled + timedelta(milliseconds=400)
    held = withheld_by_batch(
        [("1004", settled), ("1005", settled + timedelta(days=1))], [(read, 4000)]
    )
    assert held == {"1004": 0, "1005": 4000}
