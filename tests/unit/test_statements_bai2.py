"""BAI2 statements: real bank samples parse exactly; bad files are refused with the line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ledgerlink.domain.money import Money
from ledgerlink.recon.statements import StatementError, parse_statement

FIXTURES = Path(__file__).parents[1] / "fixtures" / "statements"
SVB = (FIXTURES / "svb_us_example.bai2").read_bytes()


def refused(data: bytes, name: str = "statement.bai2") -> StatementError:
    with pytest.raises(StatementError) as caught:
        parse_statement(data, name)
    return caught.value


def test_a_us_banks_bai2_reads_every_credit_exactly() -> None:
    statement = parse_statement(SVB, "svb.bai2")
    assert statement.format == "bai2"
    assert statement.account == "1234567890"
    assert statement.currency == "USD"
    assert (statement.period_start, statement.period_end) == (date(2022, 2, 1), date(2022, 2, 2))
    assert statement.opening == Money(34726979, "USD")
    assert statement.closing == Money(36122975, "USD")
    assert [
        (x.line_no, x.booked_on, x.amount, x.type_code, x.bank_ref) for x in statement.lines
    ] == [
        (7, date(2022, 2, 1), Money(490196, "USD"), "142", "172629"),
        (16, date(2022, 2, 2), Money(905800, "USD"), "142", "150675"),
    ]
    assert statement.lines[0].description == "SOME PAYMENT ACH OFFSET"


def test_a_gbp_bai2_with_continuation_records_reads_its_references() -> None:
    statement = parse_statement((FIXTURES / "citi_gbp_example.bai2").read_bytes(), "citi.bai2")
    [line] = statement.lines
    assert statement.currency == "GBP"
    assert line.amount == Money(1, "GBP")
    assert line.reference == "RP12312312312312"
    assert line.bank_ref == "1234567890"
    assert "BUCKINGHAM PALACE" in line.description


def test_the_fingerprint_is_the_same_when_the_file_is_read_again_or_saved_with_crlf() -> None:
    first = parse_statement(SVB, "a.bai2").fingerprint
    assert parse_statement(SVB, "b.bai2").fingerprint == first
    assert parse_statement(SVB.replace(b"\n", b"\r\n"), "a.bai2").fingerprint == first
    other = SVB.replace(b"16,142,490196,,172629", b"16,142,490196,,172630")
    assert parse_statement(other, "a.bai2").fingerprint != first


def test_a_wrong_account_control_total_is_refused_at_the_49_record() -> None:
    error = refused(SVB.replace(b"49,138884258,7/", b"49,138884259,7/"))
    assert error.line == 9
    assert "account trailer (49)" in error.reason
    assert "138884259" in error.reason
    assert "138884258" in error.reason


def test_a_wrong_group_control_total_is_refused_at_the_98_record() -> None:
    data = SVB.replace(b"98,143145938,1,9/", b"98,143145930,1,9/")
    error = refused(data)
    assert error.line == 19
    assert "group trailer (98)" in error.reason


def test_a_wrong_file_total_or_record_count_is_refused_at_the_99_record() -> None:
    assert refused(SVB.replace(b"99,282030196,2,20", b"99,282030197,2,20")).line == 20
    count = refused(SVB.replace(b"99,282030196,2,20", b"99,282030196,2,21"))
    assert count.line == 20
    assert "number of records" in count.reason


def test_a_truncated_bai2_is_refused_at_its_last_line() -> None:
    cut = b"\n".join(SVB.splitlines()[:12])
    error = refused(cut)
    assert error.line == 12
    assert "truncated" in error.reason


def test_an_unknown_record_code_is_refused_with_its_line() -> None:
    error = refused(SVB.replace(b"16,142,905800", b"17,142,905800"))
    assert error.line == 16
    assert "record code" in error.reason


def test_a_byte_that_is_not_text_is_refused_with_its_line_and_offset() -> None:
    data = SVB.replace(b"SOME PAYMENT", b"SOME PAYM\xe9NT", 1)
    error = refused(data)
    assert error.line == 8
    offset = data.index(b"\xe9")
    assert f"offset {offset}" in error.reason


def test_a_file_of_two_accounts_is_refused() -> None:
    second = SVB.replace(b"03,1234567890,USD,010,35217175", b"03,9999999999,USD,010,35217175")
    error = refused(second)
    assert "2 accounts" in error.reason
    assert "one account per file" in error.fix


@pytest.mark.parametrize(
    ("good", "bad", "line", "said"),
    [
        (b"16,142,490196", b"16,142,49X196", 7, "49X196"),
        (b"16,142,905800", b"16,999,905800", 16, "999"),
        (b"49,138884258,7/\n", b"", 9, "account trailer (49)"),
    ],
)
def test_a_record_that_cannot_be_read_is_refused_at_its_own_line(
    good: bytes, bad: bytes, line: int, said: str
) -> None:
    error = refused(SVB.replace(good, bad, 1))
    assert error.line == line
    assert said in error.reason
