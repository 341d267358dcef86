"""CSV statements read with a saved column mapping; bad rows are refused with their line."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from ledgerlink.domain.money import Money
from ledgerlink.recon.statements import CsvMapping, StatementError, parse_statement

SIGNED = CsvMapping(
    account="000123456789",
    date_column="Date",
    date_format="%m/%d/%Y",
    amount_column="Amount",
    reference_column="Reference",
    description_column="Description",
)
SPLIT = CsvMapping(
    currency="EUR",
    date_column="Buchungstag",
    date_format="%d.%m.%Y",
    credit_column="Haben",
    debit_column="Soll",
    reference_column="Verwendungszweck",
    decimal_separator=",",
    thousands_separator=".",
    delimiter=";",
)


def refused(data: bytes, mapping: CsvMapping) -> StatementError:
    with pytest.raises(StatementError) as caught:
        parse_statement(data, "bank.csv", csv_mapping=mapping)
    return caught.value


def test_a_signed_amount_column_reads_credits_and_debits_exactly() -> None:
    data = (
        b"Date,Description,Reference,Amount\n"
        b'12/01/2026,"MERCHANT DEPOSIT, PAYTRACE",PAYTRACE BATCH 1004,1234.56\n'
        b"12/02/2026,BANK FEE,,-15.00\n"
    )
    statement = parse_statement(data, "bank.csv", csv_mapping=SIGNED)
    assert statement.format == "csv"
    assert statement.account == "000123456789"
    assert [(x.line_no, x.booked_on, x.amount.minor, x.reference) for x in statement.lines] == [
        (2, date(2026, 12, 1), 123456, "PAYTRACE BATCH 1004"),
        (3, date(2026, 12, 2), -1500, ""),
    ]
    assert statement.lines[0].description == "MERCHANT DEPOSIT, PAYTRACE"
    assert (statement.period_start, statement.period_end) == (date(2026, 12, 1), date(2026, 12, 2))


def test_credit_and_debit_columns_with_a_decimal_comma() -> None:
    data = (
        "Buchungstag;Verwendungszweck;Soll;Haben\n"
        "01.12.2026;Einzahlung;;1.234,50\n"
        "02.12.2026;Gebühr;12,00;\n"
    ).encode()
    lines = parse_statement(data, "bank.csv", csv_mapping=SPLIT).lines
    assert [x.amount for x in lines] == [Money(123450, "EUR"), Money(-1200, "EUR")]


def test_a_date_in_another_format_is_refused_with_its_line() -> None:
    data = b"Date,Description,Reference,Amount\n12/01/2026,A,,1.00\n2026-12-02,B,,2.00\n"
    error = refused(data, SIGNED)
    assert error.line == 3
    assert "%m/%d/%Y" in error.reason


def test_an_amount_with_more_decimals_than_the_currency_is_refused() -> None:
    error = refused(b"Date,Description,Reference,Amount\n12/01/2026,A,,1.005\n", SIGNED)
    assert error.line == 2
    assert "3 decimal places" in error.reason


def test_an_amount_that_is_not_a_number_is_refused_with_its_line() -> None:
    error = refused(b"Date,Description,Reference,Amount\n12/01/2026,A,,$12\n", SIGNED)
    assert error.line == 2
    assert "'$12'" in error.reason


def test_a_column_missing_from_the_header_names_the_columns_found() -> None:
    error = refused(b"Posted,Description,Reference,Amount\n12/01/2026,A,,1.00\n", SIGNED)
    assert error.line == 1
    assert "'Date'" in error.reason
    assert "Posted" in error.reason


def test_a_row_with_both_credit_and_debit_is_refused() -> None:
    data = b"Buchungstag;Verwendungszweck;Soll;Haben\n01.12.2026;X;1,00;2,00\n"
    assert "both a credit and a debit" in refused(data, SPLIT).reason


def test_a_csv_without_a_saved_mapping_is_refused() -> None:
    with pytest.raises(StatementError, match="column mapping"):
        parse_statement(b"Date,Amount\n2026-12-01,1.00\n", "bank.csv")


def test_a_mapping_needs_an_amount_column_or_both_credit_and_debit() -> None:
    with pytest.raises(ValidationError, match="credit and the debit"):
        CsvMapping(date_column="Date", credit_column="In")
    with pytest.raises(ValidationError, match="full date"):
        CsvMapping(date_column="Date", amount_column="Amount", date_format="%m/%Y")
    with pytest.raises(ValidationError, match="ISO 4217"):
        CsvMapping(date_column="Date", amount_column="Amount", currency="XXY")
