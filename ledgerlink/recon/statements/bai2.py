"""BAI2 (the US banks' cash management format) read with the ``bai2`` library.

The library parses the records and checks the control totals and record counts of every
account (49), group (98) and file (99) trailer; this module adds what it does not know:
the line each fault is on, refusal of a truncated file, and exact signed money per entry
(BAI2 amounts are whole minor units; the type code says credit or debit).
``bai2_records`` checks each record's fields and order first, so a damaged file is
refused in the bank's terms rather than with the library's Python errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

from bai2.constants import RecordCode, TypeCodeTransaction
from bai2.exceptions import IntegrityException
from bai2.helpers import IteratorHelper
from bai2.parsers import Bai2FileParser

from ledgerlink.domain.money import Money
from ledgerlink.recon.statements import bai2_records
from ledgerlink.recon.statements.errors import StatementError
from ledgerlink.recon.statements.model import Statement, StatementLine
from ledgerlink.recon.statements.reading import currency_code, decode

FORMAT = "bai2"
_CODES = {code.value for code in RecordCode}
_TRAILERS = {"Account": "49", "Group": "98", "Bai2File": "99"}
_TRAILER_NAMES = {
    "49": "account trailer (49)",
    "98": "group trailer (98)",
    "99": "file trailer (99)",
}
_INTEGRITY = re.compile(
    r"Invalid (?P<what>[a-z ]+) for (?P<model>\w+)\. expected (?P<expected>-?\d+), "
    r"found (?P<found>-?\d+)"
)
_OPENING_LEDGER = "010"
_CLOSING_LEDGER = "015"


def looks_like(text: str) -> bool:
    return text.lstrip().startswith("01,")


def parse(data: bytes) -> Statement:
    """A BAI2 file as a :class:`Statement`, or :class:`StatementError` naming the line."""
    text = decode(data, "utf-8", what="BAI2 file")
    records = [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    _check_records(records)
    bai2_records.check(bai2_records.records(records))
    parsed = _run_library(records)
    return _statement(parsed, records)


def _check_records(records: list[tuple[int, str]]) -> None:
    if not records:
        raise StatementError(None, "the BAI2 file is empty", "export the statement again")
    for number, line in records:
        code = line[:2]
        if code not in _CODES or (len(line) > 2 and line[2] != ","):
            raise StatementError(
                number,
                f"{line[:12]!r} does not start with a BAI2 record code (01, 02, 03, 16, 49, "
                "88, 98 or 99)",
                "the file is not BAI2 or is damaged; export it again",
            )
    if records[0][1][:2] != "01":
        raise StatementError(
            records[0][0],
            "a BAI2 file must start with the 01 file header",
            "export the complete file again",
        )
    if records[-1][1][:2] != "99":
        raise StatementError(
            records[-1][0],
            "the file ends without the 99 file trailer: it is truncated",
            "ask the bank for the complete file",
        )


def _run_library(records: list[tuple[int, str]]) -> Any:
    consumed = 0

    def lines() -> Iterator[str]:
        nonlocal consumed
        for index, (_number, line) in enumerate(records):
            consumed = index
            yield line

    helper: Any = None
    try:
        helper = IteratorHelper(lines())
        return Bai2FileParser(helper, check_integrity=True).parse()
    except IntegrityException as exc:
        raise _integrity_error(str(exc), records, consumed) from None
    except StopIteration:
        raise StatementError(
            records[-1][0],
            "the file ends in the middle of a group or account: it is truncated",
            "ask the bank for the complete file",
        ) from None
    except Exception:
        # bai2_records has checked every field and the order of the records, so the
        # library should read what reaches it; should it still fail, the user gets the
        # record it was on, never the library's own (Python) words.
        current = getattr(helper, "current_record", None)
        code = str(getattr(getattr(current, "code", None), "value", "") or "")
        raise StatementError(
            _record_line(records, consumed, getattr(current, "rows", [])),
            f"{bai2_records.named(code)} cannot be read as BAI2",
            "the file is damaged or not BAI2; ask the bank for a new export",
        ) from None


def _record_line(records: list[tuple[int, str]], consumed: int, rows: list[Any]) -> int:
    """The line where the record the library was reading starts: it reads one line ahead,
    so look back from where it got to for the record's own lines."""
    texts = [str(row[1]) for row in rows]
    for start in range(min(consumed, len(records) - 1), -1, -1):
        window = [text[3:] for _, text in records[start : start + len(texts)]]
        if texts and window == texts:
            return records[start][0]
    return records[min(consumed, len(records) - 1)][0]


def _integrity_error(message: str, records: list[tuple[int, str]], consumed: int) -> StatementError:
    match = _INTEGRITY.search(message)
    code = _TRAILERS.get(match["model"], "99") if match else "99"
    # The library reads a record or two ahead: the faulty trailer is the last one of its
    # kind at or before the point it had read to.
    line = next(
        (number for number, text in reversed(records[: consumed + 1]) if text[:2] == code),
        records[-1][0],
    )
    if match is None:
        return StatementError(line, message, "ask the bank for a new export")
    what = match["what"].replace("invalid ", "")
    return StatementError(
        line,
        f"the {_TRAILER_NAMES[code]} gives {what} {match['expected']} but the records "
        f"add up to {match['found']}",
        "the file is incomplete or altered; ask the bank for a new export",
    )


def _statement(parsed: Any, records: list[tuple[int, str]]) -> Statement:
    detail_lines = iter(number for number, text in records if text[:2] == "16")
    accounts: set[tuple[str, str]] = set()
    lines: list[StatementLine] = []
    days: list[date] = []
    opening: Money | None = None
    closing: Money | None = None
    currency = "USD"
    for group in parsed.children:
        as_of: date = group.header.as_of_date
        days.append(as_of)
        for account in group.children:
            header = account.header
            currency = currency_code(header.currency or group.header.currency or "USD", None)
            accounts.add((str(header.customer_account_number or ""), currency))
            for summary in header.summary_items or []:
                if summary.type_code is None:
                    continue  # an empty trailing summary some banks write
                code = summary.type_code.code
                if code == _OPENING_LEDGER and opening is None and summary.amount is not None:
                    opening = Money(int(summary.amount), currency)
                if code == _CLOSING_LEDGER and summary.amount is not None:
                    closing = Money(int(summary.amount), currency)
            for detail in account.children:
                lines.append(_line(detail, next(detail_lines), as_of, currency))
    if len(accounts) > 1:
        shown = ", ".join(sorted(f"{number} ({ccy})" for number, ccy in accounts))
        raise StatementError(
            None,
            f"the file holds {len(accounts)} accounts: {shown}",
            "import one account per file (ask the bank for one file per account)",
        )
    account, currency = accounts.pop()
    return Statement.of(
        format=FORMAT,
        account=account,
        currency=currency,
        period_start=min(days),
        period_end=max(days),
        opening=opening,
        closing=closing,
        lines=tuple(lines),
    )


def _line(detail: Any, number: int, as_of: date, currency: str) -> StatementLine:
    type_code = detail.type_code
    if detail.amount is None:
        raise StatementError(
            number, "the transaction detail (16) has no amount", "ask the bank for a new export"
        )
    if type_code.transaction is TypeCodeTransaction.credit:
        sign = 1
    elif type_code.transaction is TypeCodeTransaction.debit:
        sign = -1
    else:
        raise StatementError(
            number,
            f"type code {type_code.code} ({type_code.description}) is neither a credit nor a debit",
            "ask the bank which direction this entry moves money",
        )
    return StatementLine(
        line_no=number,
        booked_on=as_of,
        value_on=None,
        amount=Money(sign * int(detail.amount), currency),
        reference=str(detail.customer_reference or ""),
        description=str(detail.text or "").strip(),
        type_code=str(type_code.code),
        bank_ref=str(detail.bank_reference or ""),
    )
