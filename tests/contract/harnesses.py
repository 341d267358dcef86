"""How the contract suite reaches each ledger kind's sandbox: the real simulators for Sage
Business Cloud (over HTTP) and Sage 500 (its database, with the ERP's import running), and
Test Books in memory. Every adapter is built the way production builds it: a stored
connection, read back, through ``runtime.ledger_for`` (the connector registry).

A ledger kind without a harness here fails the suite (``harness``): a new kind cannot slip
past its contract."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import create_engine, func, insert, select

from ledgerlink import connections
from ledgerlink.connectors.base import Ledger
from ledgerlink.connectors.sage500.tables import tarInvoice
from ledgerlink.domain.money import Money
from ledgerlink.identity.principal import cli_principal
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox import sage500
from ledgerlink.sandbox.faults import FaultInjector
from ledgerlink.sandbox.sage500.seed import INVOICE_TRAN_TYPE
from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.store.models import Connection
from tests.support import testbooks
from tests.support.sbc import connect_ledgerlink, running_sbc


@dataclass(frozen=True)
class Traits:
    """What a kind's contract says where ledgers legitimately differ."""

    currency: str
    #: the ledger has one lockdown date and refuses posts on or before it
    closes_periods: bool
    #: ``find_receipt`` finds a posting by its key (SBC cannot: posting again with the
    #: same key is how its outcome is learnt, which the suite checks for every kind)
    finds_receipts: bool
    #: a customer id the ledger has never had
    unknown_customer_id: str
    #: an invoice id the ledger has never had
    unknown_invoice_id: str = "987654321"


class Harness(Protocol):
    traits: Traits

    def ledger(self) -> Ledger:
        """The adapter for the sandbox, built through the registry as production does."""
        ...

    def ledger_with_bad_credentials(self) -> Connection:
        """A stored connection to the same sandbox whose credentials are wrong."""
        ...


def _load(runtime: Runtime, connection_id: int) -> Connection:
    with runtime.db.read() as session:
        found = session.get(Connection, connection_id)
        assert found is not None
        return found


def _create(runtime: Runtime, kind: str, name: str, settings: dict, secrets_: dict) -> int:  # type: ignore[type-arg]
    with runtime.db.transaction() as session:
        created = connections.create(
            session,
            runtime.vault,
            cli_principal(),
            kind=kind,
            name=name,
            settings=settings,
            secrets=secrets_,
        )
        return int(created.id)


#: Raises an invoice in the sandbox as the ledger's own users would (for a customer id and
#: an amount like "40.00"); its number.
InvoiceMaker = Callable[[Ledger, str, str], Awaitable[str]]


@dataclass
class Built:
    runtime: Runtime
    connection_id: int
    bad_connection_id: int
    traits: Traits
    new_invoice: InvoiceMaker

    def ledger(self) -> Ledger:
        return self.runtime.ledger_for(_load(self.runtime, self.connection_id))

    def ledger_with_bad_credentials(self) -> Connection:
        return _load(self.runtime, self.bad_connection_id)


@contextmanager
def sbc(runtime: Runtime, tmp_path: Path) -> Iterator[Built]:
    config = SbcConfig(rate_limit_per_minute=0, seed_people=8)
    with running_sbc(tmp_path / "sbc", config, FaultInjector()) as (base_url, _):
        connection_id = connect_ledgerlink(runtime, base_url)
        with runtime.db.read() as session:
            good = session.scalars(select(Connection).where(Connection.id == connection_id)).one()
            settings = dict(good.settings)
        # the same Sage app and business, but never authorised: no token Sage accepts
        bad = _create(
            runtime, "sbc", "Sage, not authorised", settings, {"client_secret": "not-the-secret"}
        )
        yield Built(
            runtime,
            connection_id,
            bad,
            Traits(
                "USD",
                closes_periods=True,
                finds_receipts=False,
                unknown_customer_id="00000000000000000000000000000000",
                unknown_invoice_id="00000000000000000000000000000000",
            ),
            _sbc_invoice,
        )


class _Erp:
    """The Sage 500 simulator's import procedure, running as the ERP's job would."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        config = sage500.Sage500Config(seed_people=8, import_interval_seconds=0.02)
        sage500.create_schema(self.engine)
        sage500.seed(self.engine, config)
        self.processor = sage500.ImportProcessor(self.engine, config, faults=FaultInjector())
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.processor.run_forever, args=(self.stop,), daemon=True
        )

    @contextmanager
    def running(self) -> Iterator[None]:
        self.thread.start()
        try:
            yield
        finally:
            self.stop.set()
            self.thread.join(timeout=10)
            self.engine.dispose()


@contextmanager
def sage500_erp(runtime: Runtime, tmp_path: Path) -> Iterator[Built]:
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    erp = _Erp(url)
    settings = {
        "mode": "sql",
        "company_id": "SOA",
        "currency": "USD",
        "receipt_gl_account": "1010-00",
        "refund_gl_account": "1010-00",
        "import_wait_seconds": 20,
    }
    good = _create(runtime, "sage500", "Sage 500", settings, {"database_url": url})
    # a database the login cannot open (its folder does not exist)
    missing = f"sqlite:///{tmp_path / 'no-such-folder' / 'erp.db'}"
    bad = _create(runtime, "sage500", "Sage 500, wrong login", settings, {"database_url": missing})
    with erp.running():
        yield Built(
            runtime,
            good,
            bad,
            Traits(
                "USD", closes_periods=False, finds_receipts=True, unknown_customer_id="987654321"
            ),
            _sage500_invoice(erp),
        )


@contextmanager
def test_books(runtime: Runtime, tmp_path: Path) -> Iterator[Built]:
    name = f"books-{secrets.token_hex(4)}"
    books = testbooks.Books(api_key=secrets.token_hex(8))
    books.seed(8)
    books.lockdown = date(date.today().year - 1, 12, 31)  # last year is closed, as in SBC
    testbooks.SYSTEMS[name] = books
    try:
        good = _create(
            runtime, "testbooks", "Test Books", {"books": name}, {"api_key": books.api_key}
        )
        bad = _create(
            runtime, "testbooks", "Test Books, old key", {"books": name}, {"api_key": "revoked"}
        )
        yield Built(
            runtime,
            good,
            bad,
            Traits(
                "USD",
                closes_periods=True,
                finds_receipts=True,
                unknown_customer_id="C999999",
                unknown_invoice_id="I999999",
            ),
            _books_invoice(books),
        )
    finally:
        testbooks.SYSTEMS.pop(name, None)


async def _sbc_invoice(ledger: Ledger, customer_id: str, amount: str) -> str:
    """A sales invoice posted to the SBC sandbox through its API (the adapter's client)."""
    client: Any = ledger.client  # type: ignore[attr-defined]
    accounts = await client.request(
        "GET", "/ledger_accounts", params={"ledger_account_type_id": "SALES"}
    )
    today = date.today()
    body = {
        "contact_id": customer_id,
        "date": today.isoformat(),
        "due_date": (today + timedelta(days=30)).isoformat(),
        "invoice_lines": [
            {
                "description": "Dues",
                "ledger_account_id": accounts.json()["$items"][0]["id"],
                "quantity": "1",
                "unit_price": amount,
            }
        ],
    }
    created = await client.request("POST", "/sales_invoices", json={"sales_invoice": body})
    return str(created.json()["invoice_number"])


def _sage500_invoice(erp: _Erp) -> InvoiceMaker:
    async def raise_invoice(ledger: Ledger, customer_id: str, amount: str) -> str:
        """A tarInvoice row, as Sage 500's own invoice entry writes it."""
        now = datetime.now().replace(microsecond=0)
        with erp.engine.begin() as conn:
            key = int(conn.scalar(select(func.max(tarInvoice.c.InvcKey))) or 0) + 1
            conn.execute(
                insert(tarInvoice).values(
                    InvcKey=key,
                    TranID=sage500.invoice_tran_id(key),
                    TranNo=f"{key:010d}",
                    TranType=INVOICE_TRAN_TYPE,
                    TranDate=now,
                    PostDate=now,
                    DueDate=now + timedelta(days=30),
                    TranAmt=Decimal(amount),
                    TranAmtHC=Decimal(amount),
                    Balance=Decimal(amount),
                    BalanceHC=Decimal(amount),
                    CustKey=int(customer_id),
                    CompanyID="SOA",
                    CurrID="USD",
                    CurrExchRate=Decimal(1),
                    Status=1,
                    UpdateCounter=1,
                )
            )
        return str(sage500.invoice_tran_id(key))

    return raise_invoice


def _books_invoice(books: testbooks.Books) -> InvoiceMaker:
    async def raise_invoice(ledger: Ledger, customer_id: str, amount: str) -> str:
        return books.add_invoice(customer_id, Money.parse(amount, books.currency)).number

    return raise_invoice


HARNESSES = {"sbc": sbc, "sage500": sage500_erp, "testbooks": test_books}
