"""CSV statements read with a saved column mapping (Python's csv module does the reading).

Banks' CSV exports differ in every way that matters, so the user saves, once per bank, a
:class:`CsvMapping` saying which column holds what, how dates are written and which
decimal separator is used; the store keeps it (it is a small pydantic model) and every
later import of that bank's files uses it.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ledgerlink.domain.money import Money, MoneyError, normalise_currency
from ledgerlink.recon.statements.errors import StatementError
from ledgerlink.recon.statements.model import Statement, StatementLine
from ledgerlink.recon.statements.reading import decode, money

FORMAT = "csv"


class CsvMapping(BaseModel):
    """Which column of a bank's CSV export holds what. Columns are named by their header."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field("", max_length=64, description="The account these files are of.")
    currency: str = Field("USD", description="ISO 4217 currency of the amounts.")
    date_column: str = Field(..., min_length=1, description="Column of the booking date.")
    date_format: str = Field("%Y-%m-%d", description="strftime format, e.g. %m/%d/%Y.")
    value_date_column: str | None = None
    amount_column: str | None = Field(
        None, description="Signed amount (credits positive); or use credit/debit columns."
    )
    credit_column: str | None = None
    debit_column: str | None = Field(
        None, description="Debits as positive numbers (a leading minus is accepted too)."
    )
    reference_column: str | None = None
    description_column: str | None = None
    bank_ref_column: str | None = None
    type_column: str | None = None
    decimal_separator: Literal[".", ","] = "."
    thousands_separator: Literal["", ",", ".", " ", "'"] = ""
    delimiter: Literal[",", ";", "\t", "|"] = ","
    encoding: str = Field("utf-8", description="Text encoding of the file, e.g. cp1252.")

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        try:
            return normalise_currency(value)
        except MoneyError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, value: str) -> str:
        sample = date(2026, 12, 31)
        try:
            if datetime.strptime(sample.strftime(value), value).date() != sample:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{value!r} does not write a full date; use e.g. %Y-%m-%d or %m/%d/%Y"
            ) from None
        return value

    @model_validator(mode="after")
    def _amount_columns(self) -> CsvMapping:
        split = self.credit_column is not None or self.debit_column is not None
        if self.amount_column is None and not (self.credit_column and self.debit_column):
            raise ValueError("name the amount column, or both the credit and the debit column")
        if self.amount_column is not None and split:
            raise ValueError("name either the amount column or credit/debit columns, not both")
        if self.decimal_separator == self.thousands_separator:
            raise ValueError("the decimal and thousands separators must differ")
        return self


def parse(data: bytes, mapping: CsvMapping) -> Statement:
    """A CSV export read with ``mapping``, or :class:`StatementError` naming the line."""
    text = decode(data, mapping.encoding, what="CSV file")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=mapping.delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise StatementError(1, f"the header row cannot be read: {exc}", "check the file") from None
    if not header:
        raise StatementError(None, "the CSV file is empty", "export the statement again")
    columns = _columns(header, mapping)
    lines: list[StatementLine] = []
    start = reader.line_num + 1
    try:
        for row in reader:
            number, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            lines.append(_line(row, number, columns, mapping))
    except csv.Error as exc:
        raise StatementError(start, f"the row cannot be read: {exc}", "check the quoting") from None
    if not lines:
        raise StatementError(None, "the CSV file has a header but no rows", "export again")
    days = [line.booked_on for line in lines]
    return Statement.of(
        format=FORMAT,
        account=mapping.account,
        currency=mapping.currency,
        period_start=min(days),
        period_end=max(days),
        opening=None,
        closing=None,
        lines=tuple(lines),
    )


def _columns(header: list[str], mapping: CsvMapping) -> dict[str, int]:
    names = [cell.strip().removeprefix("\ufeff") for cell in header]
    folded = [name.casefold() for name in names]
    wanted = {
        "date": mapping.date_column,
        "value_date": mapping.value_date_column,
        "amount": mapping.amount_column,
        "credit": mapping.credit_column,
        "debit": mapping.debit_column,
        "reference": mapping.reference_column,
        "description": mapping.description_column,
        "bank_ref": mapping.bank_ref_column,
        "type": mapping.type_column,
    }
    found: dict[str, int] = {}
    for role, column in wanted.items():
        if column is None:
            continue
        key = column.strip().casefold()
        if key not in folded:
            raise StatementError(
                1,
                f"the {role.replace('_', ' ')} column {column!r} is not in the header "
                f"(columns: {', '.join(names)})",
                "correct the saved column mapping or export the file with that column",
            )
        found[role] = folded.index(key)
    return found


def _cell(row: list[str], columns: dict[str, int], role: str) -> str:
    index = columns.get(role)
    if index is None or index >= len(row):
        return ""
    return row[index].strip()


def _amount(raw: str, mapping: CsvMapping, number: int, column: str) -> Money:
    value = raw.replace("\u00a0", " ")
    if mapping.thousands_separator:
        value = value.replace(mapping.thousands_separator, "")
    if mapping.decimal_separator == ",":
        if "." in value:
            raise StatementError(
                number,
                f"{column} {raw!r} has a '.' but the mapping says ',' is the decimal separator",
                "correct the decimal separator in the column mapping",
            )
        value = value.replace(",", ".")
    elif "," in value:
        raise StatementError(
            number,
            f"{column} {raw!r} has a ',' that is neither the decimal nor the thousands "
            "separator of the mapping",
            "set the thousands or decimal separator in the column mapping",
        )
    return money(value.replace(" ", ""), mapping.currency, number, field=column)


def _date(raw: str, mapping: CsvMapping, number: int, column: str) -> date:
    try:
        return datetime.strptime(raw, mapping.date_format).date()
    except ValueError:
        raise StatementError(
            number,
            f"{column} {raw!r} is not a date written as {mapping.date_format}",
            "correct the date format in the column mapping",
        ) from None


def _line(
    row: list[str], number: int, columns: dict[str, int], mapping: CsvMapping
) -> StatementLine:
    booked_raw = _cell(row, columns, "date")
    if not booked_raw:
        raise StatementError(number, f"the date ({mapping.date_column}) is empty", "fill it in")
    if mapping.amount_column is not None:
        raw = _cell(row, columns, "amount")
        if not raw:
            raise StatementError(
                number, f"the amount ({mapping.amount_column}) is empty", "fill it in"
            )
        amount = _amount(raw, mapping, number, mapping.amount_column)
    else:
        credit = _cell(row, columns, "credit")
        debit = _cell(row, columns, "debit")
        credit_amount = (
            _amount(credit, mapping, number, str(mapping.credit_column)) if credit else None
        )
        debit_amount = _amount(debit, mapping, number, str(mapping.debit_column)) if debit else None
        if credit_amount and debit_amount:
            raise StatementError(
                number,
                "the row has both a credit and a debit amount",
                "one row is one entry: split it or correct the file",
            )
        if credit_amount is None and debit_amount is None:
            raise StatementError(number, "the row has neither a credit nor a debit", "fill one in")
        amount = (
            credit_amount if credit_amount else -abs(debit_amount or Money(0, mapping.currency))
        )
    value_raw = _cell(row, columns, "value_date")
    return StatementLine(
        line_no=number,
        booked_on=_date(booked_raw, mapping, number, mapping.date_column),
        value_on=_date(value_raw, mapping, number, str(mapping.value_date_column))
        if value_raw
        else None,
        amount=amount,
        reference=_cell(row, columns, "reference"),
        description=_cell(row, columns, "description"),
        type_code=_cell(row, columns, "type"),
        bank_ref=_cell(row, columns, "bank_ref"),
    )
