"""OFX statements (1.x SGML, 2.x XML): real samples parse; bad files are refused."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ledgerlink.domain.money import Money
from ledgerlink.recon.statements import StatementError, parse_statement

FIXTURES = Path(__file__).parents[1] / "fixtures" / "statements"
MEDIUM = (FIXTURES / "ofxparse_bank_medium.ofx").read_bytes()


def refused(data: bytes, name: str = "statement.ofx") -> StatementError:
    with pytest.raises(StatementError) as caught:
        parse_statement(data, name)
    return caught.value


def test_an_sgml_bank_statement_reads_every_transaction_exactly() -> None:
    statement = parse_statement(MEDIUM, "bank.ofx")
    assert statement.format == "ofx"
    assert statement.account == "12300 000012345678"
    assert statement.currency == "CAD"
    assert statement.period_start == date(2009, 4, 1)
    assert statement.closing == Money(38234, "CAD")
    assert [(x.line_no, x.amount.minor, x.type_code, x.bank_ref) for x in statement.lines] == [
        (15, -660, "POS", "0000123456782009040100001"),
        (16, -31667, "CHECK", "0000123456782009040200004"),
        (17, -2200, "POS", "0000123456782009040300005"),
    ]
    assert statement.lines[1].description == "Joe's Bald Hairstyles"


def test_a_card_statement_in_cp1252_with_a_blank_first_line_reads() -> None:
    statement = parse_statement((FIXTURES / "ofxparse_chase_cc.qfx").read_bytes(), "cc.qfx")
    [line] = statement.lines
    assert statement.account == "0123012301230123"
    assert line.amount == Money(-1000, "USD")
    assert line.description == "SQ *ECCO UN POCO \u00a6 NATURA"


def test_an_ofx_without_transactions_is_refused() -> None:
    start = MEDIUM.index(b"<STMTTRN>")
    end = MEDIUM.index(b"</BANKTRANLIST>")
    error = refused(MEDIUM[:start] + MEDIUM[end:])
    assert "STMTTRN" in error.reason
    assert error.line == 14


def test_a_truncated_ofx_is_refused() -> None:
    error = refused(MEDIUM[: MEDIUM.index(b"</BANKTRANLIST>")])
    assert "truncated" in error.reason


def test_a_transaction_amount_with_more_decimals_than_the_currency_is_refused() -> None:
    error = refused(MEDIUM.replace(b"<TRNAMT>-6.60", b"<TRNAMT>-6.605"))
    assert error.line == 15
    assert "more decimal places than CAD has (2)" in error.reason


def test_an_undecodable_byte_is_named_with_its_line() -> None:
    data = MEDIUM.replace(b"CHARSET:1252", b"CHARSET:NONE").replace(
        b"ENCODING:USASCII", b"ENCODING:UTF-8"
    )
    data = data.replace(b"CONNIE'S", b"CONNI\xc3'S")
    error = refused(data)
    assert error.line == 17
    assert "offset" in error.reason


def test_the_posting_date_is_the_banks_own_not_moved_to_utc() -> None:
    evening = MEDIUM.replace(
        b"<DTPOSTED>20090401122017.000[-5:EST]", b"<DTPOSTED>20090401221700.000[-5:EST]"
    )
    statement = parse_statement(evening, "bank.ofx")
    assert statement.lines[0].booked_on == date(2009, 4, 1)
