"""Any mangling of a valid statement file is either read or refused with a StatementError.

Finance users upload whatever their bank gave them: a file cut short in transfer, a line
lost or doubled by a text editor, a byte flipped. The readers must never answer that with
another exception (a 500 in the portal, a stack trace in the CLI), and the refusal must be
in the bank's terms, not a Python error message.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledgerlink.recon.statements import CsvMapping, StatementError, parse_statement

FIXTURES = Path(__file__).parents[1] / "fixtures" / "statements"
SVB = (FIXTURES / "svb_us_example.bai2").read_bytes()
CITI = (FIXTURES / "citi_gbp_example.bai2").read_bytes()
CAMT = (FIXTURES / "genkgo_camt053.v8.xml").read_bytes()
OFX = (FIXTURES / "ofxparse_bank_medium.ofx").read_bytes()
QFX = (FIXTURES / "ofxparse_chase_cc.qfx").read_bytes()
CSV = (
    b"Date,Description,Reference,Amount,Value date\n"
    b'12/01/2026,"MERCHANT DEPOSIT, PAYTRACE",PAYTRACE BATCH 1004,1234.56,12/02/2026\n'
    b"12/02/2026,BANK FEE,,-15.00,\n"
    b"12/03/2026,DEPOSIT,X1,99.99,12/03/2026\n"
)
CSV_MAPPING = CsvMapping(
    account="000123456789",
    date_column="Date",
    date_format="%m/%d/%Y",
    amount_column="Amount",
    reference_column="Reference",
    description_column="Description",
    value_date_column="Value date",
)
# What a Python error leaks into a message; a user must never read these.
_LEAKS = re.compile(
    r"index out of range|invalid literal|NoneType|object has no attribute|unconverted data"
    r"|does not match format|not supported between|Traceback|KeyError|unexpected keyword"
    r"|is not a valid \w+$|Expected \w+, got",
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mangled(draw: st.DrawFn, data: bytes, separator: bytes) -> bytes:
    """``data`` with one or two of: a line dropped, doubled, swapped or cut at a field
    separator; bytes replaced, inserted or deleted; the file cut short."""
    result = data
    for _ in range(draw(st.integers(1, 2))):
        lines = result.split(b"\n")
        how = draw(
            st.sampled_from(
                ["drop", "double", "swap", "cut_fields", "replace", "insert", "delete", "cut"]
            )
        )
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        if how == "drop" and len(lines) > 1:
            del lines[at]
        elif how == "double":
            lines.insert(at, lines[at])
        elif how == "swap" and len(lines) > 1:
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif how == "cut_fields":
            parts = lines[at].split(separator)
            keep = draw(st.integers(0, max(len(parts) - 1, 0)))
            lines[at] = separator.join(parts[:keep])
        if how in ("drop", "double", "swap", "cut_fields"):
            result = b"\n".join(lines)
            continue
        position = draw(st.integers(0, max(len(result) - 1, 0)))
        if how == "cut":
            result = result[:position]
            continue
        chunk = draw(
            st.one_of(
                st.binary(min_size=1, max_size=4),
                st.sampled_from(
                    [b",", b"/", b"\n", b"<", b">", b"-", b"9", b"0", b"", b"\xff", b"A", b'"']
                ),
            )
        )
        size = 0 if how == "insert" else draw(st.integers(1, 8))
        if how == "delete":
            chunk = b""
        result = result[:position] + chunk + result[position + size :]
    return result


def read_or_refuse(data: bytes, name: str, mapping: CsvMapping | None = None) -> None:
    refusal: StatementError | None = None
    try:
        parse_statement(data, name, csv_mapping=mapping)
    except StatementError as error:
        refusal = error
    if refusal is not None:
        assert not _LEAKS.search(refusal.reason), refusal.reason
        assert refusal.reason
        assert refusal.fix


@FUZZ
@given(data=st.one_of(mangled(SVB, b","), mangled(CITI, b",")))
@example(data=b"01,121140399,121140399\n99,1,1,2\n")
@example(data=SVB.replace(b"16,142,490196,,172629,/", b"16,142"))
@example(data=SVB.replace(b"02,121140399,121140399,1,220201,,USD,2/", b"02,1,2,1,,,USD,2/"))
def test_a_mangled_bai2_file_is_read_or_refused_in_finance_words(data: bytes) -> None:
    read_or_refuse(data, "statement.bai2")


@FUZZ
@given(data=st.one_of(mangled(OFX, b">"), mangled(QFX, b">")))
def test_a_mangled_ofx_file_is_read_or_refused(data: bytes) -> None:
    read_or_refuse(data, "statement.ofx")


@FUZZ
@given(data=mangled(CAMT, b">"))
def test_a_mangled_camt053_file_is_read_or_refused(data: bytes) -> None:
    read_or_refuse(data, "statement.xml")


@FUZZ
@given(data=mangled(CSV, b","))
def test_a_mangled_csv_file_is_read_or_refused(data: bytes) -> None:
    read_or_refuse(data, "statement.csv", CSV_MAPPING)


@pytest.mark.parametrize(
    ("data", "line", "said"),
    [
        (
            b"01,121140399,121140399\n99,1,1,2\n",
            1,
            "the file header (01) has 3 fields; a BAI2 01 record has 9",
        ),
        (
            SVB.replace(b"16,142,490196,,172629,/", b"16,142"),
            7,
            "the transaction detail (16) has 2 fields",
        ),
        (
            SVB.replace(b"49,138884258,7/", b"49,138884258"),
            9,
            "the account trailer (49) has 2 fields; a BAI2 49 record has 3",
        ),
        (
            SVB.replace(b"02,121140399,121140399,1,220201,,USD,2/", b"02,1,2,1,,,USD,2/"),
            2,
            "the group header (02) has no as-of date",
        ),
        (
            SVB.replace(b"16,142,490196,,172629,/", b"16,142,490196,Q,172629,/"),
            7,
            "funds type",
        ),
        (
            SVB.replace(b"49,138884258,7/\n", b"", 1),
            9,
            "group trailer (98)",
        ),
        (
            SVB.replace(b"01,121140399,121140399,230214,0754,1,,,2/", b"01,1,2,230214,0754,1,,,3/"),
            1,
            "version 3",
        ),
    ],
)
def test_a_malformed_bai2_record_is_named_with_its_line_type_and_fault(
    data: bytes, line: int, said: str
) -> None:
    with pytest.raises(StatementError) as caught:
        parse_statement(data, "statement.bai2")
    assert caught.value.line == line
    assert said in caught.value.reason
    assert not _LEAKS.search(caught.value.reason)
