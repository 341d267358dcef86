"""Flat-file mode: the same import through CSV files, for sites that allow no SQL writes.

The ERP picks up ``*.csv`` from the inbox (write a file under another name and rename it
when complete: files are read whole), stages its rows, runs the import, writes
``<name>.results.csv`` to the outbox (via a temporary name, so a reader never sees half a
file) and moves the input to ``inbox/processed/``.

Cash-receipt files have the StgCashRcpt columns (``ImportReference, CompanyID, CustID,
TranType, TranDate, TranAmt, CurrID, GLAcctNo, TranCmnt, ApplyToInvcID, PmtAmt``); more
rows with the same ImportReference add applications. Customer files are recognised by a
``CustName`` column and have the StgCustomer columns. Results have ``ImportReference,
Status, ErrorMessage, Key``; a reference imported before reports its earlier outcome.
"""

from __future__ import annotations

import csv
import os
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from ledgerlink.connectors.sage500.flat_files import CUSTOMER_COLUMNS, RECEIPT_COLUMNS
from ledgerlink.connectors.sage500.tables import (
    FAILED,
    POSTED,
    StgCashRcpt,
    StgCashRcptAppl,
    StgCustomer,
)

if TYPE_CHECKING:
    from ledgerlink.sandbox.sage500.processor import ImportProcessor

RESULT_COLUMNS = ("ImportReference", "Status", "ErrorMessage", "Key")
STATUS_WORDS = {0: "Pending", POSTED: "Posted", FAILED: "Failed"}


class FileRowError(ValueError):
    pass


def _decimal(value: str, column: str) -> Decimal | None:
    if not value.strip():
        return None
    try:
        return Decimal(value.strip())
    except InvalidOperation:
        raise FileRowError(f"{column} {value!r} is not a number (write 1234.50)") from None


def _date(value: str, column: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise FileRowError(f"{column} {value!r} is not a date (write YYYY-MM-DD)") from None


class FlatFiles:
    def __init__(self, processor: ImportProcessor, inbox: Path, outbox: Path) -> None:
        self.processor = processor
        self.engine = processor.engine
        self.inbox = inbox
        self.outbox = outbox
        self.processed = inbox / "processed"
        for folder in (self.inbox, self.outbox, self.processed):
            folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_config(cls, processor: ImportProcessor) -> FlatFiles | None:
        config = processor.config
        if not config.inbox_dir or not config.outbox_dir:
            return None
        return cls(processor, Path(config.inbox_dir), Path(config.outbox_dir))

    def process_once(self) -> list[Path]:
        written = []
        for path in sorted(self.inbox.glob("*.csv")):
            written.append(self._process(path))
        return written

    def _process(self, path: Path) -> Path:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = tuple(reader.fieldnames or ())
            rows = list(reader)
        results: dict[str, tuple[str, str, str]] = {}
        if "CustName" in header:
            references = self._stage_customers(rows, results)
            table, key = StgCustomer, "CustKey"
        else:
            missing = [c for c in ("ImportReference", "CustID", "TranAmt") if c not in header]
            if missing:
                results[""] = (
                    "Failed",
                    f"the file has no {', '.join(missing)} column; "
                    f"expected {', '.join(RECEIPT_COLUMNS)}",
                    "",
                )
                return self._write(path, results)
            references = self._stage_receipts(rows, results)
            table, key = StgCashRcpt, "CustPmtKey"
        for _ in range(5):  # a lock timeout leaves rows pending: give them a few passes
            if not self.processor.run_once().retried:
                break
        with self.engine.connect() as conn:
            for row in conn.execute(select(table).where(table.c.ImportReference.in_(references))):
                results[row.ImportReference] = (
                    STATUS_WORDS.get(row.ProcessStatus, "Pending"),
                    row.ErrorMessage or "",
                    str(getattr(row, key) or ""),
                )
        return self._write(path, results)

    def _known(self, table: Any, reference: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.scalar(select(table.c.RowKey).where(table.c.ImportReference == reference))
                is not None
            )

    def _stage_receipts(
        self, rows: list[dict[str, str]], results: dict[str, tuple[str, str, str]]
    ) -> list[str]:
        grouped: dict[str, list[dict[str, str]]] = {}
        for number, row in enumerate(rows, start=2):
            reference = (row.get("ImportReference") or "").strip()
            if not reference:
                results[f"line {number}"] = (
                    "Failed",
                    "ImportReference is empty; every row needs one",
                    "",
                )
                continue
            grouped.setdefault(reference, []).append(row)
        staged = []
        for reference, group in grouped.items():
            staged.append(reference)
            if self._known(StgCashRcpt, reference):
                continue  # imported before: report its earlier outcome
            head = group[0]
            try:
                values = {
                    "ImportReference": reference,
                    "CompanyID": (
                        head.get("CompanyID") or self.processor.config.company_id
                    ).strip(),
                    "CustID": (head.get("CustID") or "").strip(),
                    "TranType": (head.get("TranType") or "CashRcpt").strip(),
                    "TranDate": _date(head.get("TranDate") or "", "TranDate"),
                    "TranAmt": _decimal(head.get("TranAmt") or "", "TranAmt"),
                    "CurrID": (head.get("CurrID") or "").strip() or None,
                    "GLAcctNo": (head.get("GLAcctNo") or "").strip() or None,
                    "TranCmnt": (head.get("TranCmnt") or "").strip()[:50] or None,
                    "CreateDate": datetime.now().replace(microsecond=0),
                }
                applications = [
                    {
                        "ImportReference": reference,
                        "ApplyToInvcID": r["ApplyToInvcID"].strip(),
                        "PmtAmt": _decimal(r.get("PmtAmt") or "", "PmtAmt"),
                    }
                    for r in group
                    if (r.get("ApplyToInvcID") or "").strip()
                ]
                if any(a["PmtAmt"] is None for a in applications):
                    raise FileRowError("PmtAmt is required on every row that names ApplyToInvcID")
            except FileRowError as exc:
                staged.remove(reference)
                results[reference] = ("Failed", str(exc), "")
                continue
            with self.engine.begin() as conn:
                conn.execute(insert(StgCashRcpt).values(**values))
                if applications:
                    conn.execute(insert(StgCashRcptAppl), applications)
        return staged

    def _stage_customers(
        self, rows: list[dict[str, str]], results: dict[str, tuple[str, str, str]]
    ) -> list[str]:
        staged = []
        for number, row in enumerate(rows, start=2):
            reference = (row.get("ImportReference") or "").strip()
            if not reference:
                results[f"line {number}"] = (
                    "Failed",
                    "ImportReference is empty; every row needs one",
                    "",
                )
                continue
            staged.append(reference)
            if self._known(StgCustomer, reference):
                continue
            values: dict[str, Any] = {
                c: (row.get(c) or "").strip() or None for c in CUSTOMER_COLUMNS
            }
            values["CompanyID"] = values["CompanyID"] or self.processor.config.company_id
            values["CustID"] = values["CustID"] or ""
            values["CreateDate"] = datetime.now().replace(microsecond=0)
            with self.engine.begin() as conn:
                conn.execute(insert(StgCustomer).values(**values))
        return staged

    def _write(self, source: Path, results: dict[str, tuple[str, str, str]]) -> Path:
        target = self.outbox / f"{source.stem}.results.csv"
        partial = target.with_suffix(".csv.part")
        with partial.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(RESULT_COLUMNS)
            for reference, (status, message, key) in results.items():
                writer.writerow((reference, status, message, key))
        os.replace(partial, target)
        os.replace(source, self.processed / source.name)
        return target
