"""Statements written by the sandbox read back exactly (property test), anomalies included."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerlink.domain.money import Money
from ledgerlink.recon.statements import parse_statement
from ledgerlink.sandbox.statements import WRITERS, Anomalies, BankLine, BankStatement, deposit_lines

WORDS = st.from_regex(r"[A-Z0-9]{1,5}( [A-Z0-9]{1,5}){0,2}", fullmatch=True)
FIRST_DAY = date(2026, 1, 1)


@st.composite
def statements(draw: st.DrawFn) -> BankStatement:
    currency = draw(st.sampled_from(["USD", "EUR", "JPY", "KWD"]))
    offsets = draw(st.lists(st.integers(0, 60), min_size=1, max_size=12))
    lines = tuple(
        BankLine(
            booked_on=FIRST_DAY + timedelta(days=offset),
            amount_minor=draw(st.integers(-(10**9), 10**9).filter(lambda n: n != 0)),
            reference=draw(st.one_of(st.just(""), WORDS)),
            description=draw(st.one_of(st.just(""), WORDS)),
            bank_ref=draw(st.from_regex(r"[A-Z0-9]{1,16}", fullmatch=True)),
        )
        for offset in sorted(offsets)
    )
    return BankStatement(
        account=draw(st.from_regex(r"[0-9]{4,17}", fullmatch=True)),
        currency=currency,
        period_start=lines[0].booked_on,
        period_end=lines[-1].booked_on,
        opening_minor=draw(st.integers(-(10**10), 10**10)),
        lines=lines,
        created_at=datetime(2026, 12, 7, 1, 30),
    )


def read_back(statement: BankStatement, format: str) -> list[tuple[object, ...]]:
    parsed = parse_statement(WRITERS[format](statement), f"statement.{format}")
    assert parsed.format == format
    assert parsed.account == statement.account
    assert parsed.currency == statement.currency
    assert (parsed.period_start, parsed.period_end) == (
        statement.period_start,
        statement.period_end,
    )
    assert parsed.closing == Money(statement.closing_minor, statement.currency)
    if format != "ofx":  # OFX states only the closing (ledger) balance
        assert parsed.opening == Money(statement.opening_minor, statement.currency)
    assert all(line.amount.currency == statement.currency for line in parsed.lines)
    return [
        (x.booked_on, x.amount.minor, x.reference, x.description, x.bank_ref) for x in parsed.lines
    ]


@settings(max_examples=40, deadline=None)
@given(statements())
def test_every_written_statement_reads_back_line_for_line(statement: BankStatement) -> None:
    expected = [
        (x.booked_on, x.amount_minor, x.reference, x.description, x.bank_ref)
        for x in statement.lines
    ]
    for format in WRITERS:
        assert read_back(statement, format) == expected, format


@settings(max_examples=10, deadline=None)
@given(statements())
def test_reading_a_written_statement_twice_gives_the_same_fingerprint(
    statement: BankStatement,
) -> None:
    for format, write in WRITERS.items():
        data = write(statement)
        first = parse_statement(data, "a").fingerprint
        assert parse_statement(data, "b").fingerprint == first, format


DEPOSITS = [
    {"batch_number": 1004, "net": "480.10", "deposit_on": "2026-12-02"},
    {"batch_number": 1005, "net": "95.00", "deposit_on": "2026-12-03"},
    {"batch_number": 1006, "net": "210.33", "deposit_on": "2026-12-04"},
    {"batch_number": 1007, "net": "-12.00", "deposit_on": "2026-12-04"},
    {"batch_number": 1008, "net": "0.00", "deposit_on": "2026-12-04"},
]


def test_the_chosen_anomalies_change_the_deposits_as_asked() -> None:
    anomalies = Anomalies(
        missing=frozenset({"1005"}),
        fee_difference={"1006": 125},
        late={"1004": 3},
        unknown_credits=(7500,),
    )
    lines, start, end = deposit_lines(DEPOSITS, anomalies, None, date(2026, 12, 6))
    assert (start, end) == (date(2026, 12, 2), date(2026, 12, 6))
    assert [(x.booked_on, x.amount_minor, x.reference) for x in lines] == [
        (date(2026, 12, 4), 20908, "PAYTRACE BATCH 1006"),  # 1.25 less than the net
        (date(2026, 12, 4), -1200, "PAYTRACE BATCH 1007"),  # chargebacks above the batch
        (date(2026, 12, 5), 48010, "PAYTRACE BATCH 1004"),  # three days late
        (date(2026, 12, 6), 7500, "UNKNOWN 1"),
    ]


def test_a_deposit_late_past_the_period_is_in_transit_and_not_on_the_statement() -> None:
    lines, _, _ = deposit_lines(
        DEPOSITS, Anomalies(late={"1006": 10}), date(2026, 12, 1), date(2026, 12, 6)
    )
    assert "PAYTRACE BATCH 1006" not in [x.reference for x in lines]
