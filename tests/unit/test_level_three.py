"""Level 3's own sum check and pro-rata split (ledgerlink/domain/level_three.py): PayTrace
does not check that line items add up, so ledgerlink must, in integer minor units."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.domain.invoice_lines import InvoiceDetail, InvoiceLine
from ledgerlink.domain.level_three import (
    MASTERCARD,
    VISA,
    CommodityRule,
    CommodityTable,
    LevelThreeRefused,
    brand_of,
    build,
)
from ledgerlink.domain.money import Money

TABLE = CommodityTable((CommodityRule("WIDGET-01", "43211503", "EA"),), "80141600", "EA")


def usd(minor: int) -> Money:
    return Money(minor, "USD")


def line(
    position: int,
    quantity: int,
    unit: int,
    discount: int = 0,
    amount: int | None = None,
    item: str = "WIDGET-01",
) -> InvoiceLine:
    net = quantity * unit - discount if amount is None else amount
    return InvoiceLine(
        position,
        f"Item {position}",
        item,
        Decimal(quantity),
        usd(unit),
        usd(discount),
        usd(0),
        usd(net),
    )


def invoice(lines: list[InvoiceLine], tax: int) -> InvoiceDetail:
    total = sum(item.amount.minor for item in lines) + tax
    return InvoiceDetail("1", "INV-1", usd(total), usd(tax), tuple(lines))


def test_a_line_that_does_not_add_up_is_refused_naming_the_line_and_the_sum() -> None:
    bad = invoice([line(1, 1, 1000), line(2, 4, 424, amount=1999)], tax=0)
    with pytest.raises(LevelThreeRefused) as refused:
        build(bad, bad.total, VISA, TABLE)
    assert refused.value.field == "line 2.amount"
    assert refused.value.message == "line 2 amount 19.99 is not 4 x 4.24 (= 16.96)"


def test_lines_and_tax_that_miss_the_invoice_total_are_refused() -> None:
    detail = invoice([line(1, 2, 500)], tax=80)
    short = InvoiceDetail("1", "INV-1", usd(1100), detail.tax, detail.lines)
    with pytest.raises(LevelThreeRefused) as refused:
        build(short, short.total, VISA, TABLE)
    assert refused.value.field == "invoice_total"
    assert "come to 10.80, not the invoice total 11.00" in refused.value.message


def test_the_whole_invoice_is_sent_line_for_line_with_commodity_codes() -> None:
    detail = invoice([line(1, 3, 250, discount=50), line(2, 1, 999, item="OTHER")], tax=120)
    data = build(detail, detail.total, MASTERCARD, TABLE, ship_from_zip="98101")
    assert [
        (x.quantity, x.unit_cost.minor, x.discount.minor, x.amount.minor) for x in data.lines
    ] == [
        (Decimal(3), 250, 50, 700),
        (Decimal(1), 999, 0, 999),
    ]
    assert [x.commodity_code for x in data.lines] == ["43211503", "80141600"]
    assert data.tax == usd(120)
    assert data.total == detail.total


def test_only_visa_and_mastercard_take_level_three() -> None:
    assert brand_of("Visa") == VISA
    assert brand_of("MasterCard") == MASTERCARD
    assert brand_of("AMEX") is None
    assert brand_of("Discover") is None


amounts = st.lists(
    st.tuples(st.integers(1, 50), st.integers(0, 100_000), st.integers(0, 10_000)),
    min_size=1,
    max_size=12,
)


@given(amounts, st.integers(0, 50_000), st.data())
def test_any_part_payment_is_split_over_the_lines_and_tax_to_the_cent(
    raw: list[tuple[int, int, int]], tax: int, data: st.DataObject
) -> None:
    lines = [
        line(n + 1, quantity, unit, discount=min(discount, quantity * unit))
        for n, (quantity, unit, discount) in enumerate(raw)
    ]
    detail = invoice(lines, tax)
    if detail.total.minor == 0:
        return
    sale = usd(data.draw(st.integers(1, detail.total.minor)))
    sent = build(detail, sale, VISA, TABLE)
    assert sum(x.amount.minor for x in sent.lines) + sent.tax.minor == sale.minor
    for original, part in zip(detail.lines, sent.lines, strict=True):
        assert 0 <= part.amount.minor <= original.amount.minor
        assert part.amount.minor == int(part.quantity) * part.unit_cost.minor - part.discount.minor
    assert 0 <= sent.tax.minor <= tax
    if sale == detail.total:
        assert [x.amount for x in sent.lines] == [x.amount for x in detail.lines]
