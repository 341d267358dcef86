"""Writing to Sage 500 the supported way: rows in staging tables, posted by the ERP's import.

ledgerlink never inserts into posted tables. A cash receipt or customer becomes a staging
row whose ``ImportReference`` is ledgerlink's idempotency key (unique), then we wait for
the import to mark it posted (with the key of what it created) or failed (with the ERP's
own error message). Because the reference is unique, a repeat finds the earlier row:

* posted → the earlier result, ``replayed``;
* pending → keep waiting (it will be posted once, whoever staged it);
* failed → the row is set back to pending with the values sent now, so a retry after the
  operator fixed the cause (reactivated the customer, opened the period) posts it.

Everything here is synchronous SQLAlchemy Core; the async adapter runs it in a thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Select, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledgerlink.connectors.sage500.tables import (
    FAILED,
    PENDING,
    POSTED,
    StgCashRcpt,
    StgCashRcptAppl,
    StgCustomer,
)

#: ImportReference is varchar(64); longer keys are shortened with a digest suffix.
REFERENCE_LENGTH = 64
POLL_SECONDS = 0.05


def reference_for(key: str) -> str:
    if len(key) <= REFERENCE_LENGTH:
        return key
    import hashlib

    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: REFERENCE_LENGTH - 17]}~{digest}"


@dataclass(frozen=True)
class Outcome:
    """What the ERP's import did with one staged row."""

    status: int  # PENDING, POSTED, FAILED
    key: int | None  # CustPmtKey / CustKey once posted
    message: str | None
    replayed: bool  # the row existed before this call


@dataclass(frozen=True)
class StagedApplication:
    invoice_tran_id: str
    amount: Decimal


@dataclass(frozen=True)
class StagedReceipt:
    reference: str
    company_id: str
    cust_id: str
    tran_type: str  # CashRcpt, Refund, Chargeback
    tran_date: datetime
    amount: Decimal
    currency: str
    gl_account: str
    comment: str
    applications: tuple[StagedApplication, ...] = ()

    def row(self) -> dict[str, Any]:
        return {
            "ImportReference": self.reference,
            "CompanyID": self.company_id,
            "CustID": self.cust_id,
            "TranType": self.tran_type,
            "TranDate": self.tran_date,
            "TranAmt": self.amount,
            "CurrID": self.currency,
            "GLAcctNo": self.gl_account,
            "TranCmnt": self.comment[:50] or None,
            "ProcessStatus": PENDING,
            "ErrorMessage": None,
            "CreateDate": _now(),
        }


#: SQL Server's table hint for "read this row and keep it for my update": SQLAlchemy's
#: ``with_for_update()`` renders nothing at all on SQL Server (``FOR UPDATE`` exists there
#: only for cursors), so the hint is given explicitly for that dialect.
SQL_SERVER_UPDATE_LOCK = "WITH (UPDLOCK, ROWLOCK)"


def _locked(query: Select[Any], table: Table) -> Select[Any]:
    """``query`` reading a staging row its transaction goes on to write: the row stays
    locked until commit (``FOR UPDATE`` on PostgreSQL, ``UPDLOCK`` on SQL Server), so two
    workers re-staging the same failed row take turns and the second sees it pending
    (a replay) instead of both staging it again. No ``HOLDLOCK``: a reference not yet
    staged locks no key range (that would serialise every staging insert); two first
    stagings of one reference meet at the unique constraint instead."""
    return query.with_for_update().with_hint(table, SQL_SERVER_UPDATE_LOCK, "mssql")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


class Staging:
    """Stage rows and wait for the import, on one ERP database."""

    def __init__(
        self,
        engine: Engine,
        *,
        receipts: Table = StgCashRcpt,
        applications: Table = StgCashRcptAppl,
        customers: Table = StgCustomer,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = engine
        self.receipts = receipts
        self.applications = applications
        self.customers = customers
        self._clock = clock
        self._sleep = sleep

    # -- cash receipts ---------------------------------------------------------------------

    def stage_receipt(self, receipt: StagedReceipt) -> bool:
        """Stage ``receipt``; False when its reference was staged before and nothing was
        written. An earlier row that failed is staged again with these values (True)."""
        with self.engine.begin() as conn:
            existing = conn.execute(
                _locked(
                    select(self.receipts.c.RowKey, self.receipts.c.ProcessStatus).where(
                        self.receipts.c.ImportReference == receipt.reference
                    ),
                    self.receipts,
                )
            ).first()
            if existing is not None:
                if existing.ProcessStatus == FAILED:
                    self._restage_receipt(conn, receipt)
                    return True  # a new attempt, not a replay
                return False
            try:
                with conn.begin_nested():
                    conn.execute(insert(self.receipts).values(**receipt.row()))
                    self._insert_applications(conn, receipt)
            except IntegrityError:
                return False  # staged by someone else a moment ago: same outcome
        return True

    def _insert_applications(self, conn: Any, receipt: StagedReceipt) -> None:
        if receipt.applications:
            conn.execute(
                insert(self.applications),
                [
                    {
                        "ImportReference": receipt.reference,
                        "ApplyToInvcID": a.invoice_tran_id,
                        "PmtAmt": a.amount,
                    }
                    for a in receipt.applications
                ],
            )

    def _restage_receipt(self, conn: Any, receipt: StagedReceipt) -> None:
        values = receipt.row()
        values.pop("ImportReference")
        conn.execute(
            update(self.receipts)
            .where(self.receipts.c.ImportReference == receipt.reference)
            .values(**values, ProcessDate=None)
        )
        conn.execute(
            self.applications.delete().where(
                self.applications.c.ImportReference == receipt.reference
            )
        )
        self._insert_applications(conn, receipt)

    def receipt_outcome(self, reference: str) -> Outcome | None:
        return self._outcome(self.receipts, "CustPmtKey", reference, replayed=True)

    def wait_receipt(self, reference: str, timeout: float, *, replayed: bool) -> Outcome:
        return self._wait(self.receipts, "CustPmtKey", reference, timeout, replayed)

    # -- customers ----------------------------------------------------------------------------

    def stage_customer(self, reference: str, values: dict[str, Any]) -> bool:
        row = {
            **values,
            "ImportReference": reference,
            "ProcessStatus": PENDING,
            "ErrorMessage": None,
            "CreateDate": _now(),
        }
        with self.engine.begin() as conn:
            existing = conn.execute(
                _locked(
                    select(self.customers.c.ProcessStatus).where(
                        self.customers.c.ImportReference == reference
                    ),
                    self.customers,
                )
            ).first()
            if existing is not None:
                if existing.ProcessStatus == FAILED:
                    row.pop("ImportReference")
                    conn.execute(
                        update(self.customers)
                        .where(self.customers.c.ImportReference == reference)
                        .values(**row, ProcessDate=None)
                    )
                    return True
                return False
            try:
                with conn.begin_nested():
                    conn.execute(insert(self.customers).values(**row))
            except IntegrityError:
                return False
        return True

    def wait_customer(self, reference: str, timeout: float, *, replayed: bool) -> Outcome:
        return self._wait(self.customers, "CustKey", reference, timeout, replayed)

    # -- waiting --------------------------------------------------------------------------------

    def _outcome(self, table: Table, key: str, reference: str, replayed: bool) -> Outcome | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.ProcessStatus, table.c.ErrorMessage, table.c[key]).where(
                    table.c.ImportReference == reference
                )
            ).first()
        if row is None:
            return None
        return Outcome(int(row.ProcessStatus), row[2], row.ErrorMessage, replayed)

    def _wait(
        self, table: Table, key: str, reference: str, timeout: float, replayed: bool
    ) -> Outcome:
        deadline = self._clock() + timeout
        pause = POLL_SECONDS
        while True:
            outcome = self._outcome(table, key, reference, replayed)
            assert outcome is not None, f"staged row {reference} vanished"
            if outcome.status in (POSTED, FAILED) or self._clock() >= deadline:
                return outcome
            self._sleep(pause)
            pause = min(pause * 1.5, 1.0)
