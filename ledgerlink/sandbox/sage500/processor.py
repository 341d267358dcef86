"""The ERP's import procedure: validate staged rows, post them, or write the error back.

It stands in for Sage 500's own import (the ``spim…`` procedures behind Data Migrator):
each staged cash receipt or customer is handled in its own transaction and ends either
``POSTED`` (with the key of what it created) or ``FAILED`` with an ``ErrorMessage`` a
finance user can act on. Injected lock timeouts leave the row pending, as a real lock
timeout would, and the next pass tries again.

Posting a receipt writes ``tarCustPmt`` (``UnappliedAmt`` = what was not applied), one
``tarPmtAppl`` row per application, and lowers each invoice's ``Balance``/``BalanceHC``
(bumping ``UpdateCounter``). A refund or chargeback is a negative payment whose
applications raise the balances again, re-opening the invoices.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.connectors.sage500.tables import (
    FAILED,
    PENDING,
    POSTED,
    StgCashRcpt,
    StgCashRcptAppl,
    StgCustomer,
    tarCustomer,
    tarCustPmt,
    tarInvoice,
    tarPmtAppl,
    tciAddress,
    tciContact,
    tglAccount,
    tmcCurrency,
    tsmCompany,
)
from ledgerlink.sandbox.faults import FaultInjector
from ledgerlink.sandbox.sage500.config import Sage500Config
from ledgerlink.sandbox.sage500.files import FlatFiles

log = logging.getLogger(__name__)

RECEIPT_TYPES = ("CashRcpt", "Refund", "Chargeback")
LOCK_TIMEOUT = (
    "Lock request time out period exceeded (SQL Server error 1222) while posting; the import "
    "will try this row again"
)


class Refused(Exception):
    """The row cannot be posted; the message goes to ErrorMessage."""


class LockTimeout(Exception):
    """Another session held a lock; the row stays pending."""


@dataclass
class ImportSummary:
    posted: int = 0
    failed: int = 0
    retried: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.posted + self.failed


def _now(clock: Clock = SYSTEM_CLOCK) -> datetime:
    """The ERP server's time as it stores it: naive, whole seconds."""
    return clock.now().astimezone(UTC).replace(tzinfo=None, microsecond=0)


def _places(amount: Decimal) -> int:
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


class ImportProcessor:
    def __init__(
        self,
        engine: Engine,
        config: Sage500Config,
        faults: FaultInjector | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        #: The ERP server's clock: what the import stamps rows with (tests skew it).
        self.clock = clock
        self.engine = engine
        self.config = config
        self.faults = faults or FaultInjector()
        self.totals = ImportSummary()
        self._lock = threading.Lock()

    # -- driving ------------------------------------------------------------------------

    def run_once(self) -> ImportSummary:
        """One pass over pending customers, then pending cash receipts."""
        with self._lock:
            summary = ImportSummary()
            self._pass(StgCustomer, self._post_customer, "CustKey", summary)
            self._pass(StgCashRcpt, self._post_receipt, "CustPmtKey", summary)
            self.totals.posted += summary.posted
            self.totals.failed += summary.failed
            self.totals.retried += summary.retried
            return summary

    def run_forever(self, stop: threading.Event) -> None:
        """Import every ``import_interval_seconds`` until ``stop`` is set (files too)."""
        files = FlatFiles.from_config(self)
        while not stop.is_set():
            try:
                self.run_once()
                if files is not None:
                    files.process_once()
            except Exception:  # keep the simulated ERP alive; the log says what broke
                log.exception("sage500.import_pass_failed")
            stop.wait(self.config.import_interval_seconds)

    def process_files_once(self) -> list[str]:
        """Flat-file mode: import every CSV in the inbox; names of the result files."""
        files = FlatFiles.from_config(self)
        return [] if files is None else [str(p) for p in files.process_once()]

    def _pass(self, table: Any, post: Any, key_column: str, summary: ImportSummary) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table)
                .where(table.c.ProcessStatus == PENDING)
                .order_by(table.c.RowKey)
                .limit(self.config.import_batch_size)
            ).all()
        for row in rows:
            try:
                if self.faults.draw("lock_timeout"):
                    raise LockTimeout(LOCK_TIMEOUT)
                if self.faults.draw("import_error"):
                    raise Refused(
                        "The import procedure rejected this row (injected import error); "
                        "correct nothing, post it again under a new reference"
                    )
                with self.engine.begin() as conn:
                    created = post(conn, row)
                    conn.execute(
                        update(table)
                        .where(table.c.RowKey == row.RowKey)
                        .values(
                            ProcessStatus=POSTED,
                            ErrorMessage=None,
                            ProcessDate=_now(self.clock),
                            Attempts=row.Attempts + 1,
                            **{key_column: created},
                        )
                    )
                summary.posted += 1
            except LockTimeout as exc:
                self._mark(table, row, PENDING, str(exc))
                summary.retried += 1
            except Refused as exc:
                self._mark(table, row, FAILED, str(exc))
                summary.failed += 1
                summary.errors.append(f"{row.ImportReference}: {exc}")

    def _mark(self, table: Any, row: Any, status: int, message: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.RowKey == row.RowKey)
                .values(
                    ProcessStatus=status,
                    ErrorMessage=message[:255],
                    ProcessDate=_now(self.clock) if status != PENDING else None,
                    Attempts=row.Attempts + 1,
                )
            )

    # -- shared checks ---------------------------------------------------------------------

    @staticmethod
    def _company(conn: Connection, company_id: str) -> Any:
        company = conn.execute(
            select(tsmCompany).where(tsmCompany.c.CompanyID == company_id)
        ).first()
        if company is None:
            raise Refused(f"CompanyID {company_id!r} does not exist in this Sage 500 database")
        return company

    @staticmethod
    def _customer(conn: Connection, company_id: str, cust_id: str) -> Any:
        customer = conn.execute(
            select(tarCustomer).where(
                tarCustomer.c.CompanyID == company_id, tarCustomer.c.CustID == cust_id
            )
        ).first()
        if customer is None or customer.Status == 0:
            raise Refused(f"Customer {cust_id!r} does not exist in company {company_id}")
        if customer.Status != 1:
            raise Refused(
                f"Customer {cust_id} is inactive; reactivate it in Sage 500 or post the "
                "receipt to another customer"
            )
        return customer

    @staticmethod
    def _amount(value: Any, column: str, digits: int, currency: str) -> Decimal:
        if value is None:
            raise Refused(f"{column} is required")
        amount = Decimal(str(value))
        if amount <= 0:
            raise Refused(f"{column} must be greater than zero (got {amount})")
        if _places(amount) > digits:
            raise Refused(
                f"{column} {amount} has more decimal places than {currency} allows ({digits})"
            )
        return amount

    @staticmethod
    def _next_key(conn: Connection, column: Any) -> int:
        return int(conn.scalar(select(func.coalesce(func.max(column), 0))) or 0) + 1

    # -- cash receipts ------------------------------------------------------------------------

    def _post_receipt(self, conn: Connection, row: Any) -> int:
        company = self._company(conn, row.CompanyID)
        customer = self._customer(conn, row.CompanyID, str(row.CustID).strip())
        kind = str(row.TranType or "CashRcpt").strip()
        if kind == "Fee":
            raise Refused(
                "TranType Fee cannot be imported as a cash receipt; post merchant fees as a "
                "GL journal entry"
            )
        if kind not in RECEIPT_TYPES:
            raise Refused(f"TranType {kind!r} is not one of {', '.join(RECEIPT_TYPES)}")
        if row.TranDate is None:
            raise Refused("TranDate is required")
        currency = str(row.CurrID or company.CurrID).strip()
        digits = conn.scalar(
            select(tmcCurrency.c.DigitsAfterDecimal).where(tmcCurrency.c.CurrID == currency)
        )
        if digits is None:
            raise Refused(f"CurrID {currency!r} is not set up in Sage 500 (tmcCurrency)")
        amount = self._amount(row.TranAmt, "TranAmt", int(digits), currency)
        if not row.GLAcctNo:
            raise Refused("GLAcctNo is required: the cash account the receipt posts to")
        gl = conn.scalar(
            select(tglAccount.c.GLAcctKey).where(
                tglAccount.c.CompanyID == row.CompanyID, tglAccount.c.GLAcctNo == row.GLAcctNo
            )
        )
        if gl is None:
            raise Refused(
                f"GLAcctNo {row.GLAcctNo!r} is not a GL account of company {row.CompanyID}"
            )
        applications = self._applications(conn, row, customer, currency, int(digits), kind)
        applied = sum((amount_ for _, amount_, _ in applications), Decimal(0))
        if applied > amount:
            raise Refused(f"The applications ({applied}) exceed TranAmt ({amount})")
        sign = 1 if kind == "CashRcpt" else -1
        key = self._next_key(conn, tarCustPmt.c.CustPmtKey)
        tran_no = f"{key:010d}"
        conn.execute(
            insert(tarCustPmt).values(
                CustPmtKey=key,
                CustKey=customer.CustKey,
                TranID=f"{tran_no}-{'CR' if kind == 'CashRcpt' else 'RF'}",
                TranNo=tran_no,
                TranDate=row.TranDate,
                TranAmt=sign * amount,
                UnappliedAmt=sign * (amount - applied),
                CurrID=currency,
                CompanyID=row.CompanyID,
                TranCmnt=(row.TranCmnt or "")[:50] or None,
            )
        )
        for invoice, pay, discount in applications:
            conn.execute(
                insert(tarPmtAppl).values(
                    ApplyFromPmtKey=key,
                    ApplyToInvcKey=invoice.InvcKey,
                    PmtAmt=sign * pay,
                    DiscTakenAmt=discount,
                    ApplyDate=row.TranDate,
                )
            )
            change = sign * (pay + discount)
            conn.execute(
                update(tarInvoice)
                .where(tarInvoice.c.InvcKey == invoice.InvcKey)
                .values(
                    Balance=tarInvoice.c.Balance - change,
                    BalanceHC=tarInvoice.c.BalanceHC - change,
                    UpdateCounter=tarInvoice.c.UpdateCounter + 1,
                )
            )
        return key

    def _applications(
        self, conn: Connection, row: Any, customer: Any, currency: str, digits: int, kind: str
    ) -> list[tuple[Any, Decimal, Decimal]]:
        wanted: list[tuple[str, Any, Any]] = []
        if row.ApplyToInvcID:
            wanted.append((str(row.ApplyToInvcID).strip(), row.PmtAmt, None))
        for extra in conn.execute(
            select(StgCashRcptAppl)
            .where(StgCashRcptAppl.c.ImportReference == row.ImportReference)
            .order_by(StgCashRcptAppl.c.RowKey)
        ):
            wanted.append((str(extra.ApplyToInvcID).strip(), extra.PmtAmt, extra.DiscTakenAmt))
        result: list[tuple[Any, Decimal, Decimal]] = []
        used: dict[int, Decimal] = {}
        for tran_id, raw_amount, raw_discount in wanted:
            invoice = conn.execute(
                select(tarInvoice).where(
                    tarInvoice.c.CompanyID == row.CompanyID, tarInvoice.c.TranID == tran_id
                )
            ).first()
            if invoice is None or invoice.CustKey != customer.CustKey:
                raise Refused(f"Invoice {tran_id} is not an invoice of customer {customer.CustID}")
            if str(invoice.CurrID).strip() != currency:
                raise Refused(
                    f"Invoice {tran_id} is in {invoice.CurrID}, the receipt in {currency}"
                )
            pay = self._amount(raw_amount, f"PmtAmt for invoice {tran_id}", digits, currency)
            discount = Decimal(str(raw_discount or 0))
            already = used.get(invoice.InvcKey, Decimal(0))
            balance = Decimal(str(invoice.Balance)) - already
            if kind == "CashRcpt" and pay + discount > balance:
                raise Refused(
                    f"PmtAmt {pay} exceeds the balance {balance} of invoice {tran_id}; it may "
                    "already be paid"
                )
            if kind != "CashRcpt" and pay > Decimal(str(invoice.TranAmt)) - balance:
                raise Refused(
                    f"PmtAmt {pay} re-opens more of invoice {tran_id} than was paid on it"
                )
            used[invoice.InvcKey] = already + (pay + discount if kind == "CashRcpt" else -pay)
            result.append((invoice, pay, discount))
        return result

    # -- customers ---------------------------------------------------------------------------

    def _post_customer(self, conn: Connection, row: Any) -> int:
        self._company(conn, row.CompanyID)
        cust_id = str(row.CustID or "").strip()
        if not cust_id:
            raise Refused("CustID is required")
        name = str(row.CustName or "").strip()
        if not name:
            raise Refused("CustName is required")
        if row.CountryID and len(str(row.CountryID).strip()) != 3:
            raise Refused(f"CountryID {row.CountryID!r} must be a 3-letter code such as USA")
        now = _now(self.clock)
        address = {
            "AddrName": name[:40],
            "AddrLine1": row.AddrLine1,
            "AddrLine2": row.AddrLine2,
            "City": row.City,
            "StateID": row.StateID,
            "PostalCode": row.PostalCode,
            "CountryID": row.CountryID,
        }
        contact = {
            "Name": (row.CntctName or name)[:40],
            "EMailAddr": row.EMailAddr,
            "Phone": row.Phone,
        }
        existing = conn.execute(
            select(tarCustomer).where(
                tarCustomer.c.CompanyID == row.CompanyID, tarCustomer.c.CustID == cust_id
            )
        ).first()
        if existing is not None:
            conn.execute(
                update(tciAddress)
                .where(tciAddress.c.AddrKey == existing.DfltBillToAddrKey)
                .values(**address)
            )
            conn.execute(
                update(tciContact)
                .where(tciContact.c.CntctKey == existing.PrimaryCntctKey)
                .values(**contact)
            )
            conn.execute(
                update(tarCustomer)
                .where(tarCustomer.c.CustKey == existing.CustKey)
                .values(
                    CustName=name, UpdateDate=now, UpdateCounter=tarCustomer.c.UpdateCounter + 1
                )
            )
            return int(existing.CustKey)
        address_key = self._next_key(conn, tciAddress.c.AddrKey)
        contact_key = self._next_key(conn, tciContact.c.CntctKey)
        customer_key = self._next_key(conn, tarCustomer.c.CustKey)
        conn.execute(insert(tciAddress).values(AddrKey=address_key, **address))
        conn.execute(insert(tciContact).values(CntctKey=contact_key, **contact))
        conn.execute(
            insert(tarCustomer).values(
                CustKey=customer_key,
                CustID=cust_id,
                CustName=name,
                CompanyID=row.CompanyID,
                CustClassKey=1,
                CreditLimit=0,
                Status=1,
                PrimaryAddrKey=address_key,
                DfltBillToAddrKey=address_key,
                PrimaryCntctKey=contact_key,
                CreateDate=now,
                UpdateDate=now,
                UpdateCounter=1,
            )
        )
        return customer_key
