"""Flat-file mode: the staging rows as CSV files for sites that allow no SQL writes.

ledgerlink writes one file per posting into the drop folder (under a temporary name,
renamed when complete, so the ERP never reads half a file), named after the idempotency
key so a retry rewrites the same file, and reads the ERP's ``<name>.results.csv`` back
from the results folder. The ERP dedupes by ``ImportReference`` as well, so a file
imported twice posts once.
"""

from __future__ import annotations

import csv
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from ledgerlink.connectors.sage500.staging import Outcome, StagedReceipt
from ledgerlink.connectors.sage500.tables import FAILED, PENDING, POSTED

RECEIPT_COLUMNS = (
    "ImportReference",
    "CompanyID",
    "CustID",
    "TranType",
    "TranDate",
    "TranAmt",
    "CurrID",
    "GLAcctNo",
    "TranCmnt",
    "ApplyToInvcID",
    "PmtAmt",
)
CUSTOMER_COLUMNS = (
    "ImportReference",
    "CompanyID",
    "CustID",
    "CustName",
    "AddrLine1",
    "AddrLine2",
    "City",
    "StateID",
    "PostalCode",
    "CountryID",
    "CntctName",
    "EMailAddr",
    "Phone",
)
STATUSES = {"Posted": POSTED, "Failed": FAILED}


def file_stem(reference: str) -> str:
    return "ledgerlink-" + hashlib.sha256(reference.encode()).hexdigest()[:24]


class FlatFileExchange:
    def __init__(
        self,
        drop_folder: Path,
        results_folder: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.drop_folder = drop_folder
        self.results_folder = results_folder
        self._clock = clock
        self._sleep = sleep

    def check(self) -> str | None:
        """None when both folders are usable, else what is wrong."""
        for label, folder in (("drop", self.drop_folder), ("results", self.results_folder)):
            if not folder.is_dir():
                return f"the {label} folder {folder} does not exist"
        if not os.access(self.drop_folder, os.W_OK):
            return f"ledgerlink may not write to the drop folder {self.drop_folder}"
        return None

    def result(self, reference: str) -> Outcome | None:
        path = self.results_folder / f"{file_stem(reference)}.results.csv"
        if not path.exists():
            return None
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("ImportReference") == reference:
                    status = STATUSES.get(row.get("Status") or "", PENDING)
                    key = int(row["Key"]) if (row.get("Key") or "").isdigit() else None
                    return Outcome(status, key, row.get("ErrorMessage") or None, True)
        return None

    def drop_receipt(self, receipt: StagedReceipt) -> None:
        first = {
            "ImportReference": receipt.reference,
            "CompanyID": receipt.company_id,
            "CustID": receipt.cust_id,
            "TranType": receipt.tran_type,
            "TranDate": receipt.tran_date.date().isoformat(),
            "TranAmt": str(receipt.amount),
            "CurrID": receipt.currency,
            "GLAcctNo": receipt.gl_account,
            "TranCmnt": receipt.comment[:50],
        }
        rows = [dict(first)]
        for index, application in enumerate(receipt.applications):
            target = rows[0] if index == 0 else {"ImportReference": receipt.reference}
            if index:
                rows.append(target)
            target["ApplyToInvcID"] = application.invoice_tran_id
            target["PmtAmt"] = str(application.amount)
        self._write(receipt.reference, RECEIPT_COLUMNS, rows)

    def drop_customer(self, reference: str, values: dict[str, object]) -> None:
        row = {k: "" if v is None else str(v) for k, v in values.items()}
        self._write(reference, CUSTOMER_COLUMNS, [{"ImportReference": reference, **row}])

    def _write(self, reference: str, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
        stem = file_stem(reference)
        partial = self.drop_folder / f"{stem}.csv.part"
        with partial.open("w", newline="", encoding="utf-8") as handle:
            # Written plainly, not through csv_cells: the ERP's import reads this file, not a
            # person's spreadsheet; a quote in front of "-12.50" or a customer's name would
            # reach Sage 500 as data (an unreadable amount, a name with a quote in it).
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, self.drop_folder / f"{stem}.csv")

    def wait(self, reference: str, timeout: float, *, replayed: bool) -> Outcome:
        deadline = self._clock() + timeout
        pause = 0.05
        while True:
            outcome = self.result(reference)
            if outcome is not None and outcome.status != PENDING:
                return Outcome(outcome.status, outcome.key, outcome.message, replayed)
            if self._clock() >= deadline:
                return Outcome(PENDING, None, None, replayed)
            self._sleep(pause)
            pause = min(pause * 1.5, 1.0)
