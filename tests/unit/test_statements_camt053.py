"""CAMT.053 statements: real .02 and .08 samples parse; bad files are refused with the line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ledgerlink.domain.money import Money
from ledgerlink.recon.statements import StatementError, parse_statement

FIXTURES = Path(__file__).parents[1] / "fixtures" / "statements"
V2 = (FIXTURES / "genkgo_camt053.v2.minimal.xml").read_bytes()
V8 = (FIXTURES / "genkgo_camt053.v8.xml").read_bytes()


def refused(data: bytes, name: str = "statement.xml") -> StatementError:
    with pytest.raises(StatementError) as caught:
        parse_statement(data, name)
    return caught.value


def test_a_camt053_001_02_statement_reads_its_entry_exactly() -> None:
    statement = parse_statement(V2, "camt.xml")
    assert statement.format == "camt053"
    assert statement.account == "NL26VAYB8060476890"
    assert statement.currency == "EUR"
    assert statement.opening == Money(1815, "EUR")
    assert statement.closing is None  # its closing balance is in SEK: not this account's
    [line] = statement.lines
    assert line.line_no == 90
    assert line.amount == Money(885, "EUR")
    assert (line.booked_on, line.value_on) == (date(2014, 12, 31), date(2015, 1, 2))
    assert line.reference == "4654654654654654"
    assert line.type_code == "544"


def test_a_camt053_001_08_statement_reads_its_references() -> None:
    [line] = parse_statement(V8, "camt.xml").lines
    assert line.bank_ref == "AAAASESS-FP-CN_98765/01"
    assert line.reference == "MUELL/FINP/RA12345"
    assert line.type_code == "PMNT/RCDT/BOOK"
    assert line.booked_on == date(2014, 12, 31)


def test_an_entry_without_an_amount_is_refused_with_its_line() -> None:
    data = V8.replace(b'<Amt Ccy="EUR">8.85</Amt>', b"", 1)
    error = refused(data)
    assert error.line is not None
    assert error.line > 100
    assert "Amt" in error.reason


def test_a_truncated_camt_is_refused_with_the_line_where_it_stops() -> None:
    cut = V2[: V2.index(b"<NtryDtls>")]
    error = refused(cut)
    assert error.line is not None
    assert error.line >= 105
    assert "truncated" in error.fix


def test_a_summary_that_disagrees_with_the_entries_is_refused() -> None:
    summary = (
        b"<TxsSummry><TtlNtries><NbOfNtries>2</NbOfNtries><Sum>8.85</Sum></TtlNtries>"
        b"</TxsSummry>\n            <Ntry>"
    )
    error = refused(V2.replace(b"<Ntry>", summary, 1))
    assert "counts 2 entries" in error.reason
    assert error.line == 90


def test_balances_that_do_not_add_up_are_refused_at_the_closing_balance() -> None:
    data = V2.replace(b'<Amt Ccy="SEK">27.00</Amt>', b'<Amt Ccy="EUR">27.01</Amt>').replace(
        b"<CdtDbtInd>DBIT</CdtDbtInd>", b"<CdtDbtInd>CRDT</CdtDbtInd>", 1
    )
    error = refused(data)
    assert "does not give the closing balance 27.01" in error.reason
    assert error.line == 54  # the CLBD balance


def test_more_decimals_than_the_currency_has_are_refused() -> None:
    error = refused(V2.replace(b'<Amt Ccy="EUR">8.85</Amt>', b'<Amt Ccy="EUR">8.855</Amt>'))
    assert "3 decimal places" in error.reason


def test_a_camt052_report_is_not_taken_for_a_statement() -> None:
    data = V2.replace(b"camt.053.001.02", b"camt.052.001.02")
    error = refused(data)
    assert "neither a CAMT.053 statement" in error.reason


def test_an_undecodable_byte_is_named_with_its_line_and_offset() -> None:
    data = V2.replace(b"COMPANY BVBA", b"COMPANY \xffBVBA")
    error = refused(data)
    assert error.line == 8
    offset = data.index(b"\xff")
    assert f"offset {offset}" in error.reason
