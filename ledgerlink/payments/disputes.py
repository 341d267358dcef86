"""PayTrace's dispute report (CSV or JSON) into the inbox: chargebacks and their outcomes.

Chargebacks are not in PayTrace's JSON API; they come as a report, downloaded from
PayTrace (or fed by the processor), with one row per case. A case that is ``open`` or
``lost`` is a chargeback (the receipt is reversed and the invoice flagged in dispute); a
``won`` case is a chargeback followed by its reversal (the receipt is posted again).
Importing the same report twice changes nothing: every row is an inbox event with the
transaction and kind as its key. A bad row is reported with its line and field, and the
good rows are still imported.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from ledgerlink.domain.card_numbers import contains_card_number
from ledgerlink.domain.text import control_character_problem
from ledgerlink.payments.enqueue import request_processing
from ledgerlink.payments.inbox import EventRefused, InboundEvent, accept

REQUIRED = ("transaction_id", "dispute_amount")
#: PayTrace transaction ids are decimal numbers (stored in at most 40 characters).
TRANSACTION_ID = re.compile(r"[0-9]{1,40}")
STATUSES = ("open", "won", "lost")


@dataclass(frozen=True)
class RowProblem:
    line: int
    field: str
    message: str


@dataclass
class DisputeImport:
    rows: int = 0
    new_events: int = 0
    repeated: int = 0
    problems: list[RowProblem] = field(default_factory=list)


def parse_report(content: bytes, filename: str = "") -> list[dict[str, str]]:
    """The rows of a dispute report: a JSON ``{"disputes": [...]}`` / list, or a CSV."""
    text = content.decode("utf-8-sig", errors="replace")
    if filename.lower().endswith(".json") or text.lstrip().startswith(("{", "[")):
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EventRefused(
                "file", f"The report is not valid JSON (line {exc.lineno}: {exc.msg})"
            ) from None
        items = body.get("disputes") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise EventRefused("file", 'A JSON report is {"disputes": [...]} or a list of cases')
        for number, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                raise EventRefused(
                    "file",
                    f"case {number} of the JSON report is not an object of field: value; "
                    'write each case as {"transaction_id": ..., "dispute_amount": ...}',
                )
        return [{str(k): "" if v is None else str(v) for k, v in item.items()} for item in items]
    # newline="": the csv module reads CRLF, LF and a bare CR (old Mac files) as line ends
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
        if missing:
            raise EventRefused(
                "file",
                f"The report has no {', '.join(missing)} column; export the dispute report "
                "from PayTrace (CSV) and upload it unchanged",
            )
        return [
            {str(k): v if isinstance(v, str) else ",".join(v or []) for k, v in row.items()}
            for row in reader
        ]
    except csv.Error as exc:
        raise EventRefused(
            "file", f"The report is not valid CSV at line {reader.line_num}: {exc}"
        ) from None


def events_of(row: dict[str, str], connection_id: int | None) -> list[InboundEvent]:
    for name, value in row.items():  # first: no later message may echo a card number
        if contains_card_number(str(value)):
            raise EventRefused(
                str(name),
                f"{name} holds what looks like a full card number; ledgerlink never accepts "
                "card numbers (remove it, or keep at most the last four digits)",
            )
    for name, value in row.items():
        problem = control_character_problem(str(value))
        if problem:
            raise EventRefused(str(name), problem)
    transaction_id = (row.get("transaction_id") or "").strip()
    if not TRANSACTION_ID.fullmatch(transaction_id):
        raise EventRefused("transaction_id", f"{transaction_id!r} is not a PayTrace transaction id")
    amount_text = (row.get("dispute_amount") or "").strip()
    try:
        amount = Decimal(amount_text)
        if not amount.is_finite() or amount <= 0 or amount.adjusted() >= 12:
            raise InvalidOperation
    except InvalidOperation:
        raise EventRefused(
            "dispute_amount", f"{amount_text!r} is not a positive amount like 120.00"
        ) from None
    status = (row.get("status") or "open").strip().lower()
    if status not in STATUSES:
        raise EventRefused("status", f"{status!r} is not one of {', '.join(STATUSES)}")
    payload = {
        "transaction_id": transaction_id,
        "amount": amount_text,
        "currency": (row.get("currency") or "").strip().upper(),
        "invoice_id": (row.get("invoice_id") or "").strip(),
        "customer_id": (row.get("customer_id") or "").strip(),
        "response": " ".join(
            part
            for part in (
                (row.get("case_number") or "").strip(),
                (row.get("reason_code") or "").strip(),
                (row.get("reason") or "").strip(),
            )
            if part
        ),
    }
    payload = {name: value for name, value in payload.items() if value}
    kinds = ["chargeback", "dispute_won"] if status == "won" else ["chargeback"]
    return [
        InboundEvent(
            "dispute", transaction_id, kind, payload, verified=True, connection_id=connection_id
        )
        for kind in kinds
    ]


def import_report(
    session: Session, rows: list[dict[str, str]], connection_id: int | None
) -> DisputeImport:
    """Store every good row's events in ``session``; report the bad ones by line."""
    result = DisputeImport()
    for line, row in enumerate(rows, start=2):
        result.rows += 1
        try:
            events = events_of(row, connection_id)
        except EventRefused as refused:
            result.problems.append(RowProblem(line, refused.field, refused.message))
            continue
        for event in events:
            if accept(session, event)[1]:
                result.new_events += 1
            else:
                result.repeated += 1
    return result


def import_file(
    runtime: Any, content: bytes, filename: str, connection_id: int | None
) -> DisputeImport:
    """Parse a report and store its events, with the drain that posts them enqueued in the
    same transaction (EventRefused if the file as a whole cannot be read)."""
    rows = parse_report(content, filename)
    with runtime.db.transaction() as session:
        result = import_report(session, rows, connection_id)
        if result.new_events:
            request_processing(runtime.jobs, session)
    return result


def as_dict(result: DisputeImport) -> dict[str, Any]:
    return {
        "rows": result.rows,
        "new_events": result.new_events,
        "repeated": result.repeated,
        "problems": [p.__dict__ for p in result.problems],
    }
