"""Which format a statement file is in, and refusal of what is none of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerlink.recon.statements import StatementError, parse_statement

FIXTURES = Path(__file__).parents[1] / "fixtures" / "statements"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("svb_us_example.bai2", "bai2"),
        ("genkgo_camt053.v8.xml", "camt053"),
        ("ofxparse_bank_medium.ofx", "ofx"),
        ("ofxparse_chase_cc.qfx", "ofx"),
    ],
)
def test_the_format_is_told_by_the_content_not_the_name(name: str, expected: str) -> None:
    statement = parse_statement((FIXTURES / name).read_bytes(), "download.txt")
    assert statement.format == expected


def test_an_unknown_format_is_refused_saying_what_is_supported() -> None:
    with pytest.raises(StatementError) as caught:
        parse_statement(b"%PDF-1.7 a statement as PDF", "statement.pdf")
    assert caught.value.line == 1
    assert "not recognised" in caught.value.reason
    assert "BAI2" in caught.value.fix


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(StatementError, match="empty"):
        parse_statement(b"  \n", "statement.bai2")


def test_the_message_names_the_line_reason_and_fix() -> None:
    error = StatementError(12, "the amount is missing", "export the file again")
    assert str(error) == "line 12: the amount is missing; export the file again"
