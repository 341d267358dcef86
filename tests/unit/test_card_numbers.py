"""Card numbers are found however their digit groups are separated, and ordinary data
(dates, phone numbers, amounts, UUIDs, PayTrace transaction ids) is never taken for one."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.domain.card_numbers import contains_card_number, luhn_valid, mask_card_numbers
from ledgerlink.payments import disputes
from ledgerlink.payments.inbox import EventRefused

LINE_BREAKS = "\r\n\v\f\x85\u2028\u2029"
#: Anything that is not a letter, a digit or a line break can sit between digit groups.
separator_chars = st.characters(
    blacklist_categories=("L", "N", "Cs"), blacklist_characters=LINE_BREAKS
)


def _with_luhn_check_digit(body: str) -> str:
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always fits")


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    first = draw(st.sampled_from("123456789"))
    body = draw(st.text(alphabet="0123456789", min_size=11, max_size=17))
    return _with_luhn_check_digit(first + body)


@st.composite
def written_out(draw: st.DrawFn, pan: str) -> str:
    """``pan`` as someone might write it: whole, counted off in fours (the last group may
    be shorter), or in groups of 3-6 digits; one or two separator characters of any kind
    between the groups."""
    layout = draw(st.sampled_from(["whole", "fours", "groups"]))
    if layout == "whole":
        return pan
    groups: list[str] = []
    rest = pan
    while len(rest) > 6:
        if layout == "fours":
            size = 4
        else:
            size = draw(st.integers(min_value=3, max_value=min(6, len(rest) - 3)))
        groups.append(rest[:size])
        rest = rest[size:]
    groups += [rest] if layout == "groups" or len(rest) <= 4 else [rest[:4], rest[4:]]
    text = groups[0]
    for group in groups[1:]:
        text += draw(st.text(separator_chars, min_size=1, max_size=2)) + group
    return text


@given(data=st.data(), pan=card_numbers())
def test_a_card_number_with_any_separators_is_found_and_masked_to_its_last_four(
    data: st.DataObject, pan: str
) -> None:
    written = data.draw(written_out(pan))
    text = f"paid with {written} today"
    assert contains_card_number(text)
    assert mask_card_numbers(text) == f"paid with ****{pan[-4:]} today"


@pytest.mark.parametrize(
    "written",
    [
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "4111_1111_1111_1111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111\u00a01111\u00a01111\u00a01111",
        "4111- 1111.1111/1111",
        "3782 822463 10005",
        "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11",
        "MASKEDCARD=4111.1111.1111.1111&x=1",
        "4111 1111 1111 1111 exp 12/25",
        "4111 1111 1111 1111 12/25",
        "4222 2222 2222 2",
    ],
)
def test_the_ways_people_write_card_numbers_are_all_found(written: str) -> None:
    assert contains_card_number(written)
    masked = mask_card_numbers(written)
    assert "****" in masked
    assert not contains_card_number(masked)


@given(
    pan=card_numbers(),
    before=st.text(alphabet="abcXYZ", max_size=3),
    after=st.text(alphabet="abcXYZ", max_size=3),
)
def test_digits_inside_a_longer_alphanumeric_token_are_left_alone(
    pan: str, before: str, after: str
) -> None:
    if not (before or after):
        after = "x"
    text = f"ref {before}{pan}{after} ok"
    assert not contains_card_number(text)
    assert mask_card_numbers(text) == text


@given(moment=st.datetimes(min_value=datetime(1900, 1, 1)))
def test_dates_and_times_are_not_card_numbers(moment: datetime) -> None:
    for text in (
        str(moment),
        moment.isoformat(),
        moment.strftime("%Y-%m-%d %H:%M:%S"),
        moment.strftime("%d/%m/%Y %H:%M"),
        moment.strftime("%m/%d/%Y, %I:%M:%S %p"),
        moment.strftime("%Y-%m-%d %H:%M:%S") + " " + moment.strftime("%Y-%m-%d"),
    ):
        assert not contains_card_number(text), text


@given(
    numbers=st.lists(
        st.tuples(st.integers(200, 999), st.integers(200, 999), st.integers(0, 9999)),
        min_size=1,
        max_size=4,
    ),
    style=st.sampled_from(["+1 {} {} {:04d}", "({}) {}-{:04d}", "{}-{}-{:04d}", "+1.{}.{}.{:04d}"]),
)
def test_phone_numbers_even_in_a_list_are_not_card_numbers(
    numbers: list[tuple[int, int, int]], style: str
) -> None:
    text = ", ".join(style.format(*number) for number in numbers)
    assert not contains_card_number(text), text


@given(
    amounts=st.lists(
        st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False),
        min_size=1,
        max_size=6,
    )
)
def test_amounts_are_not_card_numbers(amounts: list[Decimal]) -> None:
    for text in (
        ", ".join(f"{a:,}" for a in amounts),
        " ".join(f"{a}" for a in amounts),
        "; ".join(f"USD {a}" for a in amounts),
    ):
        assert not contains_card_number(text), text


@given(ids=st.uuids())
def test_uuids_are_not_card_numbers(ids: UUID) -> None:
    assert not contains_card_number(str(ids))
    assert not contains_card_number(str(ids).replace("-", " "))


@given(ids=st.lists(st.integers(100_000_000, 999_999_999), min_size=1, max_size=8))
def test_paytrace_transaction_ids_even_in_a_list_are_not_card_numbers(ids: list[int]) -> None:
    for separator in (", ", " ", ",", "/", "-"):
        assert not contains_card_number(separator.join(str(i) for i in ids))


def test_numbers_that_fail_luhn_or_start_with_zero_are_not_card_numbers() -> None:
    assert not contains_card_number("4111 1111 1111 1112")
    assert not contains_card_number("0000 0000 0000 0000")
    assert not contains_card_number("order 0000000001-IN, invoice 1234567, 12500 cents")


def test_a_dispute_report_row_with_a_card_number_is_refused_naming_the_field() -> None:
    row = {
        "case_number": "CB0000001",
        "transaction_id": "180000001",
        "dispute_amount": "120.00",
        "reason": "cardholder 4111/1111/1111/1111 says not received",
        "card": "XXXXXXXXXXXX1111",
    }
    with pytest.raises(EventRefused) as refused:
        disputes.events_of(row, None)
    assert refused.value.field == "reason"
    assert "card number" in refused.value.message
    assert "4111/1111" not in refused.value.message
    assert disputes.events_of({**row, "reason": "not received"}, None)
