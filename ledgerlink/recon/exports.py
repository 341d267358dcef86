"""The breaks list as CSV and XLSX, for finance's own working papers.

Both carry the same columns as the portal's list, amounts as plain decimal numbers (and
the currency beside them) so a spreadsheet can sum them. No cell can run as a formula:
CSV cells go through ``csv_cells.SafeCsvWriter``; the XLSX writer is told never to turn
text into formulas (``strings_to_formulas: False``) and writes text as text.
"""

from __future__ import annotations

import io
from decimal import Decimal

import xlsxwriter

from ledgerlink.csv_cells import SafeCsvWriter
from ledgerlink.domain.money import Money
from ledgerlink.recon.views import BreakRow

COLUMNS = (
    "break_id",
    "type",
    "description",
    "status",
    "occurred_on",
    "age_days",
    "amount",
    "expected",
    "actual",
    "currency",
    "side",
    "ids",
    "other_ids",
    "detail",
    "assigned_to",
    "resolution",
    "resolved_by",
    "reason",
)


def _amount(minor: int | None, currency: str) -> Decimal | None:
    return None if minor is None else Money(minor, currency).to_decimal()


def _expected_actual(row: BreakRow) -> tuple[str, str]:
    return row.expected, row.actual


def _cells(row: BreakRow) -> list[object]:
    expected, actual = _expected_actual(row)
    return [
        row.break_id,
        row.type,
        row.label,
        row.status,
        row.occurred_on,
        row.age_days,
        _amount(row.amount_minor, row.currency),
        expected,
        actual,
        row.currency,
        row.side,
        " ".join(row.ids),
        " ".join(row.other_ids),
        row.detail,
        row.assigned_to or "",
        row.resolution or "",
        row.resolved_by or "",
        row.reason or "",
    ]


def breaks_csv(rows: list[BreakRow]) -> str:
    buffer = io.StringIO()
    writer = SafeCsvWriter(buffer)
    writer.writerow(COLUMNS)
    writer.writerows(_cells(row) for row in rows)
    return buffer.getvalue()


def breaks_xlsx(rows: list[BreakRow], *, title: str = "Breaks") -> bytes:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        buffer,
        {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False},
    )
    sheet = workbook.add_worksheet(title[:31])
    bold = workbook.add_format({"bold": True})
    amount = workbook.add_format({"num_format": "#,##0.00"})
    sheet.write_row(0, 0, COLUMNS, bold)
    for index, row in enumerate(rows, start=1):
        for column, value in enumerate(_cells(row)):
            if isinstance(value, Decimal):
                sheet.write_number(index, column, float(value), amount)
            elif isinstance(value, int):
                sheet.write_number(index, column, value)
            else:
                sheet.write_string(index, column, str(value))
    sheet.freeze_panes(1, 0)
    workbook.close()
    return buffer.getvalue()
