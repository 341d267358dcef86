"""The Sage 500 ledger: reads from the ERP tables, writes through staging and the import.

SQLAlchemy Core is synchronous; every database call runs in a worker thread so the
adapter fits the async Ledger port. Database failures become the connector's typed
errors: a connection or lock problem is retryable, a missing table or column is a
configuration problem, and a row the ERP's import refused is ``Rejected`` with the
ERP's own message.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import pycountry
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import (
    DBAPIError,
    NoSuchTableError,
    OperationalError,
    ProgrammingError,
)

from ledgerlink import connections
from ledgerlink.connectors.base import CheckResult, NewInvoices
from ledgerlink.connectors.errors import (
    Misconfigured,
    NotFound,
    Rejected,
    Unavailable,
    UpstreamError,
)
from ledgerlink.connectors.sage500 import invoice_lines, reads
from ledgerlink.connectors.sage500.connecting import (
    connect_failure,
    driver_message,
    url_problem,
    where,
)
from ledgerlink.connectors.sage500.flat_files import FlatFileExchange
from ledgerlink.connectors.sage500.staging import (
    Outcome,
    StagedApplication,
    StagedReceipt,
    Staging,
    reference_for,
)
from ledgerlink.connectors.sage500.tables import (
    FAILED,
    POSTED,
    StgCashRcpt,
    tarCustPmt,
    tarInvoice,
    tglAccount,
    tsmCompany,
)
from ledgerlink.domain.accounts import (
    CustomerAccount,
    CustomerDraft,
    Invoice,
    LedgerCreditNote,
    LedgerPayment,
    PostedReceipt,
    ReceiptRequest,
    ReceiptReversal,
    RefundRequest,
)
from ledgerlink.domain.invoice_lines import InvoiceDetail
from ledgerlink.domain.money import Money

SYSTEM = "sage500"
T = TypeVar("T")
CHUNK = 500


@dataclass(frozen=True)
class Sage500Options:
    company_id: str
    currency: str = "USD"
    mode: str = "sql"  # or "flat_file"
    receipt_gl_account: str = ""
    refund_gl_account: str = ""
    drop_folder: str | None = None
    results_folder: str | None = None
    import_wait_seconds: float = 60.0


@contextlib.contextmanager
def database_errors(action: str, url: URL | None = None) -> Iterator[None]:
    """Turn SQLAlchemy's errors into ones an operator can act on (naming the server at
    ``url`` when the database did not answer)."""
    try:
        yield
    except UpstreamError:
        raise
    except (NoSuchTableError, ProgrammingError) as exc:
        raise Misconfigured(
            SYSTEM,
            f"Sage 500 has no table or column ledgerlink needs while {action} "
            f"({_first_line(exc)}); check the database name and, for staging tables, that "
            "they are installed",
        ) from exc
    except OperationalError as exc:
        if url is not None and _unreachable(exc):
            raise Unavailable(
                SYSTEM, f"While {action}, {connect_failure(url, exc, unreachable=True)}"
            ) from exc
        at = f" at {where(url)}" if url is not None else ""
        raise Unavailable(
            SYSTEM, f"Sage 500's database{at} did not answer while {action}: {_first_line(exc)}"
        ) from exc
    except DBAPIError as exc:
        raise Unavailable(
            SYSTEM, f"Sage 500's database failed while {action}: {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    return driver_message(exc)[:200]


#: How database drivers word "the server is not there" (psycopg, pymssql/FreeTDS, pyodbc,
#: SQLite): a connection test failing so learned nothing about the settings.
_NOT_THERE = (
    "connection refused",
    "timed out",
    "timeout expired",
    "could not translate host name",
    "name or service not known",
    "no route to host",
    "network is unreachable",
    "unable to connect",
    "server is unavailable",
    "adaptive server is unavailable",
)


def _unreachable(exc: BaseException) -> bool:
    """Whether connecting failed because the database server did not answer, as opposed
    to refusing us (a wrong password or database name is a real failure)."""
    text = str(getattr(exc, "orig", exc)).lower()
    return any(words in text for words in _NOT_THERE)


class Sage500Ledger:
    system = SYSTEM

    def __init__(
        self, engine: Engine, options: Sage500Options, *, owns_engine: bool = True
    ) -> None:
        self.engine = engine
        self.options = options
        self.staging = Staging(engine)
        self.files: FlatFileExchange | None = None
        if options.mode == "flat_file":
            if not options.drop_folder or not options.results_folder:
                raise Misconfigured(
                    SYSTEM,
                    "Flat-file mode needs a drop folder and a results folder; set them under "
                    "Accounting Integration → Sage 500",
                )
            self.files = FlatFileExchange(Path(options.drop_folder), Path(options.results_folder))
        self._owns_engine = owns_engine
        self._digits: dict[str, int] | None = None

    async def __aenter__(self) -> Sage500Ledger:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_engine:
            await asyncio.to_thread(self.engine.dispose)

    async def _run(self, action: str, call: Callable[..., T], *args: Any) -> T:
        def guarded() -> T:
            with database_errors(action, self.engine.url):
                return call(*args)

        return await asyncio.to_thread(guarded)

    # -- checks -------------------------------------------------------------------------

    async def check(self) -> list[CheckResult]:
        return await asyncio.to_thread(self._check)

    def _check(self) -> list[CheckResult]:
        results: list[CheckResult] = []
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            unreachable = _unreachable(exc)
            results.append(
                CheckResult(
                    "reachable",
                    False,
                    connect_failure(self.engine.url, exc, unreachable=unreachable),
                    unreachable=unreachable,
                )
            )
            return results
        results.append(CheckResult("reachable", True, "the database answered"))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(tsmCompany.c.CompanyID, tsmCompany.c.CompanyName))
                companies = {str(r.CompanyID).strip(): str(r.CompanyName or "") for r in rows}
        except DBAPIError as exc:
            results.append(
                CheckResult("permissions", False, f"cannot read tsmCompany: {_first_line(exc)}")
            )
            return results
        results.append(CheckResult("permissions", True, "Sage 500 tables are readable"))
        name = companies.get(self.options.company_id)
        if name is None:
            known = ", ".join(sorted(companies)) or "none"
            results.append(
                CheckResult(
                    "company",
                    False,
                    f"company {self.options.company_id!r} is not in this database (companies: "
                    f"{known}); pick one under Accounting Integration → Sage 500",
                )
            )
            return results
        results.append(
            CheckResult("company", True, f"using {self.options.company_id} ({str(name).strip()})")
        )
        for setting, account in (
            ("receipt_gl_account", self.options.receipt_gl_account),
            ("refund_gl_account", self.options.refund_gl_account),
        ):
            if not account:
                continue
            with self.engine.connect() as conn:
                found = conn.scalar(
                    select(tglAccount.c.GLAcctKey).where(
                        tglAccount.c.CompanyID == self.options.company_id,
                        tglAccount.c.GLAcctNo == account,
                    )
                )
            results.append(
                CheckResult(
                    "gl account",
                    found is not None,
                    f"{setting} {account} exists"
                    if found is not None
                    else f"{setting} {account} is not a GL account of {self.options.company_id}",
                )
            )
        if self.files is not None:
            problem = self.files.check()
            results.append(
                CheckResult(
                    "folders", problem is None, problem or "drop and results folders usable"
                )
            )
        else:
            try:
                with self.engine.connect() as conn:
                    conn.execute(select(func.count()).select_from(StgCashRcpt))
                results.append(CheckResult("staging", True, "staging tables reachable"))
            except DBAPIError as exc:
                results.append(
                    CheckResult(
                        "staging",
                        False,
                        f"cannot use the staging table StgCashRcpt ({_first_line(exc)}); install "
                        "the staging tables or switch to flat-file mode",
                    )
                )
        return results

    # -- reads ------------------------------------------------------------------------------

    async def _chunks(self, action: str, make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        iterator = await self._run(action, make)
        while True:
            chunk = await self._run(action, _take, iterator, CHUNK)
            for item in chunk:
                yield item
            if len(chunk) < CHUNK:
                return

    async def customers(
        self, *, changed_since: datetime | None = None
    ) -> AsyncIterator[CustomerAccount]:
        def make() -> Iterator[CustomerAccount]:
            return reads.customers(
                self.engine, self.options.company_id, self.options.currency, changed_since
            )

        async for customer in self._chunks("reading customers", make):
            yield customer

    async def get_customer(self, customer_id: str) -> CustomerAccount:
        if not customer_id.isdigit():
            raise NotFound(SYSTEM, f"Sage 500 customer keys are numbers, not {customer_id!r}")
        found = await self._run(
            "reading a customer",
            lambda: reads.customer_by(
                self.engine,
                self.options.company_id,
                self.options.currency,
                CustKey=int(customer_id),
            ),
        )
        if found is None:
            raise NotFound(SYSTEM, f"Sage 500 has no customer with key {customer_id}")
        return found

    async def find_customer(self, number: str) -> CustomerAccount | None:
        return await self._run(
            "finding a customer",
            lambda: reads.customer_by(
                self.engine, self.options.company_id, self.options.currency, CustID=number
            ),
        )

    async def invoices(
        self,
        *,
        customer_id: str | None = None,
        open_only: bool = True,
        changed_since: datetime | None = None,
    ) -> AsyncIterator[Invoice]:
        """Invoices (tarInvoice has no UpdateDate: ``changed_since`` cannot narrow them)."""
        digits = await self.currency_digits()
        key = int(customer_id) if customer_id and customer_id.isdigit() else None

        def make() -> Iterator[Invoice]:
            return reads.invoices(
                self.engine, self.options.company_id, digits, customer_key=key, open_only=open_only
            )

        async for invoice in self._chunks("reading invoices", make):
            yield invoice

    async def invoices_created_after(
        self, mark: str | None, *, floor: str | None = None
    ) -> NewInvoices:
        """Open invoices whose ``InvcKey`` is above ``mark`` (less an overlap: a key is
        handed out before its row commits, but not below ``floor``), and the company's
        largest ``InvcKey``."""
        digits = await self.currency_digits()
        after = int(mark) if mark is not None and mark.isdigit() else None
        lowest = int(floor) if floor is not None and floor.isdigit() else 0
        found, top = await self._run(
            "reading new invoices",
            reads.invoices_created_after,
            self.engine,
            self.options.company_id,
            digits,
            after,
            lowest,
        )
        return NewInvoices(tuple(found), str(top))

    async def credit_notes(
        self, *, changed_since: datetime | None = None
    ) -> AsyncIterator[LedgerCreditNote]:
        """AR credit memos (tarInvoice has no change date: all of them, every time)."""
        digits = await self.currency_digits()

        def make() -> Iterator[LedgerCreditNote]:
            return reads.credit_notes(self.engine, self.options.company_id, digits)

        async for note in self._chunks("reading credit memos", make):
            yield note

    async def find_invoice(self, number: str) -> Invoice | None:
        """The invoice whose ``TranID`` is ``number`` (open or not)."""
        digits = await self.currency_digits()

        def lookup() -> list[Invoice]:
            return list(
                reads.invoices(
                    self.engine,
                    self.options.company_id,
                    digits,
                    open_only=False,
                    tran_id=number.strip(),
                )
            )

        found = await self._run("reading an invoice", lookup)
        return found[0] if found else None

    async def invoice_lines(self, invoice_id: str) -> InvoiceDetail:
        """The invoice's lines (``tarInvoiceDetl`` and its distributions), for Level 3."""
        digits = await self.currency_digits()
        return await self._run(
            "reading an invoice's lines",
            invoice_lines.invoice_lines,
            self.engine,
            self.options.company_id,
            invoice_id,
            digits,
        )

    async def payments(
        self, *, changed_since: datetime | None = None
    ) -> AsyncIterator[LedgerPayment]:
        """Customer receipts and refunds (``tarCustPmt`` has no change date, so all of
        them; the sync's content hashes make the unchanged ones cost nothing)."""
        digits = await self.currency_digits()

        def make() -> Iterator[LedgerPayment]:
            return reads.payments(self.engine, self.options.company_id, digits)

        async for payment in self._chunks("reading payments", make):
            yield payment

    async def gl_accounts(self) -> list[dict[str, str]]:
        return await self._run(
            "reading GL accounts", reads.gl_accounts, self.engine, self.options.company_id
        )

    async def currency_digits(self) -> dict[str, int]:
        if self._digits is None:
            self._digits = await self._run("reading currencies", reads.currency_digits, self.engine)
        return self._digits

    async def lockdown_date(self) -> date | None:
        """Sage 500 closes periods in its GL module; the import refuses postings into them
        and says so per row, so there is no single date to check up front."""
        return None

    # -- customers -----------------------------------------------------------------------------

    async def create_customer(self, draft: CustomerDraft, idempotency_key: str) -> CustomerAccount:
        existing = await self.find_customer(draft.number)
        if existing is not None:
            return existing
        reference = reference_for(idempotency_key)
        key = await self._stage_customer(reference, draft, "the customer")
        return await self.get_customer(str(key))

    async def update_customer(self, customer_id: str, draft: CustomerDraft) -> CustomerAccount:
        current = await self.get_customer(customer_id)
        if draft.number != current.number:
            raise Rejected(
                SYSTEM,
                f"Sage 500 customer numbers cannot change ({current.number} → {draft.number})",
                field="number",
            )
        # Updates set values, so repeating one is harmless: each gets its own reference.
        reference = reference_for(f"customer-update:{customer_id}:{uuid.uuid4().hex}")
        await self._stage_customer(reference, draft, "the customer update")
        return await self.get_customer(customer_id)

    async def _stage_customer(self, reference: str, draft: CustomerDraft, what: str) -> int:
        values = self._customer_values(draft)
        if self.files is not None:
            await asyncio.to_thread(self.files.drop_customer, reference, values)
            outcome = await asyncio.to_thread(
                self.files.wait, reference, self.options.import_wait_seconds, replayed=False
            )
        else:
            fresh = await self._run(
                "staging a customer", self.staging.stage_customer, reference, values
            )
            outcome = await self._run(
                "waiting for the import",
                lambda: self.staging.wait_customer(
                    reference, self.options.import_wait_seconds, replayed=not fresh
                ),
            )
        return self._posted_key(outcome, what, draft.name)

    def _customer_values(self, draft: CustomerDraft) -> dict[str, Any]:
        if len(draft.number) > 12:
            raise Rejected(
                SYSTEM,
                f"Sage 500 customer numbers have at most 12 characters; {draft.number!r} has "
                f"{len(draft.number)}",
                field="number",
            )
        return {
            "CompanyID": self.options.company_id,
            "CustID": draft.number,
            "CustName": draft.name[:40],
            "AddrLine1": draft.address.line1[:40] or None,
            "AddrLine2": draft.address.line2[:40] or None,
            "City": draft.address.city[:20] or None,
            "StateID": draft.address.region[:3] or None,
            "PostalCode": draft.address.postal_code[:10] or None,
            "CountryID": _alpha3(draft.address.country),
            "CntctName": draft.name[:40],
            "EMailAddr": draft.email or None,
            "Phone": draft.phone[:17] or None,
        }

    # -- receipts and refunds ---------------------------------------------------------------------

    async def post_receipt(self, receipt: ReceiptRequest) -> PostedReceipt:
        return await self._post(
            "CashRcpt",
            receipt.idempotency_key,
            receipt.customer_id,
            receipt.date,
            receipt.amount,
            receipt.applications,
            receipt.reference or receipt.memo,
            receipt.gl_account or self.options.receipt_gl_account,
            "receipt_gl_account",
            "the receipt",
        )

    async def post_refund(self, refund: RefundRequest) -> PostedReceipt:
        return await self._post(
            "Chargeback" if refund.chargeback else "Refund",
            refund.idempotency_key,
            refund.customer_id,
            refund.date,
            refund.amount,
            refund.applications,
            refund.reference or refund.memo,
            refund.gl_account or self.options.refund_gl_account or self.options.receipt_gl_account,
            "refund_gl_account",
            "the refund",
        )

    #: A Sage 500 refund (or chargeback) applied to an invoice re-opens it.
    refunds_reopen_invoices = True

    async def reverse_posted_receipt(self, reversal: ReceiptReversal) -> PostedReceipt:
        """Undo a card receipt the Sage 500 way: post the refund or chargeback entry that
        re-opens its invoice (once: its key finds an earlier post)."""
        return await self.post_refund(reversal.undoing)

    async def _post(
        self,
        kind: str,
        key: str,
        customer_id: str,
        when: date,
        amount: Money,
        applications: Any,
        comment: str,
        gl_account: str,
        gl_setting: str,
        what: str,
    ) -> PostedReceipt:
        if not gl_account:
            raise Misconfigured(
                SYSTEM,
                f"No GL cash account is set for {what.removeprefix('the ')}s ({gl_setting}); "
                "set it under Accounting Integration → Sage 500",
            )
        reference = reference_for(key)
        earlier = await self.find_receipt(key)
        if earlier is not None:
            return earlier
        customer = await self.get_customer(customer_id)
        tran_ids = await self._invoice_ids([a.invoice_id for a in applications])
        staged = StagedReceipt(
            reference=reference,
            company_id=self.options.company_id,
            cust_id=customer.number,
            tran_type=kind,
            tran_date=datetime.combine(when, datetime.min.time()),
            amount=amount.to_decimal(),
            currency=amount.currency,
            gl_account=gl_account,
            comment=comment,
            applications=tuple(
                StagedApplication(tran_ids[a.invoice_id], a.amount.to_decimal())
                for a in applications
            ),
        )
        if self.files is not None:
            await asyncio.to_thread(self.files.drop_receipt, staged)
            outcome = await asyncio.to_thread(
                self.files.wait, reference, self.options.import_wait_seconds, replayed=False
            )
        else:
            fresh = await self._run("staging a cash receipt", self.staging.stage_receipt, staged)
            outcome = await self._run(
                "waiting for the import",
                lambda: self.staging.wait_receipt(
                    reference, self.options.import_wait_seconds, replayed=not fresh
                ),
            )
        posted_key = self._posted_key(outcome, what, comment or key)
        applied = sum((a.amount for a in applications), Money.zero(amount.currency))
        return PostedReceipt(
            SYSTEM, str(posted_key), key, amount, applied, replayed=outcome.replayed
        )

    async def _invoice_ids(self, invoice_keys: list[str]) -> dict[str, str]:
        """InvcKey → TranID (the staging rows name invoices by TranID)."""
        if not invoice_keys:
            return {}
        bad = [k for k in invoice_keys if not k.isdigit()]
        if bad:
            raise Rejected(
                SYSTEM, f"Sage 500 invoice keys are numbers, not {bad[0]!r}", field="invoice_id"
            )

        def lookup() -> dict[str, str]:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(tarInvoice.c.InvcKey, tarInvoice.c.TranID).where(
                        tarInvoice.c.InvcKey.in_([int(k) for k in invoice_keys])
                    )
                ).all()
            return {str(r.InvcKey): str(r.TranID).strip() for r in rows}

        found = await self._run("reading invoices", lookup)
        missing = [k for k in invoice_keys if k not in found]
        if missing:
            raise Rejected(
                SYSTEM, f"Sage 500 has no invoice with key {missing[0]}", field="invoice_id"
            )
        return found

    def _posted_key(self, outcome: Outcome, what: str, label: str) -> int:
        if outcome.status == POSTED and outcome.key is not None:
            return int(outcome.key)
        if outcome.status == FAILED:
            raise Rejected(SYSTEM, f"Sage 500's import refused {what} ({label}): {outcome.message}")
        raise Unavailable(
            SYSTEM,
            f"Sage 500 has not imported {what} ({label}) within "
            f"{self.options.import_wait_seconds:.0f} s; it stays staged and posts once when the "
            "import runs. Check that the Sage 500 import job is running",
            outcome_unknown=False,
        )

    async def find_receipt(self, idempotency_key: str) -> PostedReceipt | None:
        reference = reference_for(idempotency_key)
        if self.files is not None:
            outcome = await asyncio.to_thread(self.files.result, reference)
        else:
            outcome = await self._run(
                "looking up a receipt", self.staging.receipt_outcome, reference
            )
        if outcome is None or outcome.status != POSTED or outcome.key is None:
            return None
        return await self._run(
            "reading a receipt", self._posted_receipt, idempotency_key, int(outcome.key)
        )

    def _posted_receipt(self, key: str, payment_key: int) -> PostedReceipt | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(tarCustPmt).where(tarCustPmt.c.CustPmtKey == payment_key)
            ).first()
        if row is None:
            return None
        currency = str(row.CurrID).strip()
        digits = (self._digits or {}).get(currency, 2)
        amount = abs(reads.to_money(row.TranAmt, currency, digits))
        unapplied = abs(reads.to_money(row.UnappliedAmt, currency, digits))
        return PostedReceipt(
            SYSTEM, str(payment_key), key, amount, amount - unapplied, replayed=True
        )


def _take(iterator: Iterator[T], count: int) -> list[T]:
    items = []
    for item in iterator:
        items.append(item)
        if len(items) >= count:
            break
    return items


def _alpha3(country: str) -> str | None:
    if not country:
        return None
    found = pycountry.countries.get(alpha_2=country.upper())
    return str(found.alpha_3) if found is not None else country.upper()[:3]


def sage500_ledger(runtime: Any, connection: Any) -> Sage500Ledger:
    """The ledger for a stored ``sage500`` connection (its database URL is a vault secret)."""
    url = connections.read_secret(runtime.vault, connection, "database_url")
    if not url:
        raise Misconfigured(
            SYSTEM, "Enter the Sage 500 database URL under Accounting Integration → Sage 500"
        )
    settings = connection.settings
    options = Sage500Options(
        company_id=settings.get("company_id") or "",
        currency=settings.get("currency") or "USD",
        mode=settings.get("mode") or "sql",
        receipt_gl_account=settings.get("receipt_gl_account") or "",
        refund_gl_account=settings.get("refund_gl_account") or "",
        drop_folder=settings.get("drop_folder"),
        results_folder=settings.get("results_folder"),
        import_wait_seconds=float(settings.get("import_wait_seconds") or 60),
    )
    problem = url_problem(url)
    if problem is not None:
        raise Misconfigured(SYSTEM, problem)
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except Exception as exc:
        raise Misconfigured(SYSTEM, f"The Sage 500 database URL is not usable: {exc}") from exc
    return Sage500Ledger(engine, options)


__all__ = ["Sage500Ledger", "Sage500Options", "sage500_ledger"]
