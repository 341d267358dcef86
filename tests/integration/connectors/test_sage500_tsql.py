"""Every statement the Sage 500 connector sends, rendered as SQL Server (T-SQL) receives it.

Production Sage 500 runs on SQL Server (``mssql+pymssql``), which this machine cannot run;
the simulator is SQLite. So the connector does its whole job against the simulator (checks,
reads of every kind, customers created and updated, receipts and refunds staged, a refused
receipt staged again) while an engine event records each statement it executes; each is
then compiled with SQLAlchemy's ``mssql+pymssql`` dialect and checked for what SQL Server
needs: ``TOP`` instead of ``LIMIT``, no ``OUTPUT`` on inserts into (triggered) staging
tables, no values for identity columns, and the update lock on the staging row a worker
goes on to change. The simulator's own import procedure (the ERP's part) runs on another
engine and is not recorded.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, update
from sqlalchemy.dialects.mssql import pymssql as mssql_pymssql
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql import ClauseElement

from ledgerlink.connectors.errors import Rejected
from ledgerlink.connectors.sage500 import reads
from ledgerlink.connectors.sage500.ledger import Sage500Ledger, Sage500Options
from ledgerlink.connectors.sage500.previews import recent_customers_query
from ledgerlink.connectors.sage500.tables import (
    FAILED,
    StgCashRcpt,
    StgCashRcptAppl,
    StgCustomer,
)
from ledgerlink.domain.accounts import (
    Address,
    Application,
    CustomerDraft,
    ReceiptRequest,
    RefundRequest,
)
from ledgerlink.domain.money import Money
from ledgerlink.sandbox import sage500
from ledgerlink.sandbox.faults import FaultInjector

DIALECT = mssql_pymssql.dialect()
OPTIONS = Sage500Options(
    company_id="SOA",
    receipt_gl_account="1010-00",
    refund_gl_account="1015-00",
    import_wait_seconds=10,
)
STAGING = {"StgCashRcpt", "StgCashRcptAppl", "StgCustomer"}
IDENTITY_COLUMNS = {"RowKey"}
SQL_SERVER_MAX_PARAMETERS = 2100


@dataclass(frozen=True)
class Rendered:
    """One statement as SQL Server would receive it."""

    sql: str
    verb: str  # SELECT, INSERT, UPDATE, DELETE

    @property
    def tables(self) -> set[str]:
        return set(re.findall(r"(?:FROM|JOIN|INTO|UPDATE)\s+\[?(\w+)\]?", self.sql))


def _render(statement: ClauseElement, rows: list[dict[str, Any]]) -> Rendered:
    keys = list(rows[0]) if rows else None
    compiled = statement.compile(
        dialect=DIALECT,
        column_keys=keys,
        for_executemany=len(rows) > 1,
        compile_kwargs={"render_postcompile": True},  # TOP n and IN (...) as sent
    )
    sql = " ".join(str(compiled).split())
    return Rendered(sql, sql.split(" ", 1)[0].upper())


class Recorder:
    """The statements executed on one engine, rendered for SQL Server."""

    def __init__(self, engine: Engine) -> None:
        self.rendered: list[Rendered] = []
        event.listen(engine, "before_execute", self._seen)

    def _seen(
        self,
        _conn: Any,
        statement: Any,
        multiparams: Any,
        params: Any,
        _options: Any,
    ) -> None:
        if not isinstance(statement, ClauseElement):
            return
        # One row of parameters arrives as ``params``, several as ``multiparams``.
        rows = [dict(row) for row in multiparams] if multiparams else []
        if not rows and params:
            rows = [dict(params)]
        self.rendered.append(_render(statement, rows))


@pytest.fixture(scope="module")
def connector_sql(tmp_path_factory: pytest.TempPathFactory) -> list[Rendered]:
    """The connector's whole job against the simulator (once for this file's tests): what
    it sent, as T-SQL."""
    url = f"sqlite:///{tmp_path_factory.mktemp('tsql') / 'erp.sqlite3'}"
    erp = sage500.simulator_engine(url)
    config = sage500.Sage500Config(seed_people=12, import_interval_seconds=0.02)
    sage500.create_schema(erp)
    sage500.seed(erp, config)
    processor = sage500.ImportProcessor(erp, config, faults=FaultInjector())
    stop = threading.Event()
    thread = threading.Thread(target=processor.run_forever, args=(stop,), daemon=True)
    thread.start()
    engine = create_engine(url)
    recorder = Recorder(engine)
    try:
        asyncio.run(_whole_job(Sage500Ledger(engine, OPTIONS, owns_engine=False), erp))
    finally:
        stop.set()
        thread.join(timeout=10)
        engine.dispose()
        erp.dispose()
    return recorder.rendered


async def _whole_job(ledger: Sage500Ledger, erp: Engine) -> None:
    assert all(r.ok for r in await ledger.check())
    customers = [c async for c in ledger.customers()]
    assert [c async for c in ledger.customers(changed_since=datetime(2000, 1, 1))]
    first = customers[0]
    await ledger.get_customer(first.id)
    await ledger.find_customer(first.number)
    invoices = [i async for i in ledger.invoices(customer_id=first.id)]
    assert [i async for i in ledger.invoices(open_only=False)]
    [n async for n in ledger.credit_notes()]
    await ledger.find_invoice(invoices[0].number)
    await ledger.invoice_lines(invoices[0].id)
    await ledger.gl_accounts()
    mark = (await ledger.invoices_created_after(None)).mark  # new invoices, for pay requests
    await ledger.invoices_created_after(str(int(mark) - 3), floor="1")

    draft = CustomerDraft(
        number="TSQL01",
        name="Ada Tsql",
        email="ada@example.org",
        phone="555-0100",
        address=Address(line1="1 Main St", city="Springfield", region="IL", country="US"),
        currency="USD",
    )
    created = await ledger.create_customer(draft, "tsql-customer-1")
    await ledger.update_customer(created.id, draft)

    invoice = invoices[0]
    half = Money(invoice.outstanding.minor // 2, "USD")
    receipt = ReceiptRequest(
        idempotency_key="tsql-receipt-1",
        customer_id=first.id,
        date=date(2026, 12, 1),
        amount=half,
        applications=(Application(invoice.id, half),),
        reference="PayTrace 1",
    )
    await ledger.post_receipt(receipt)
    await ledger.post_receipt(receipt)  # a replay: found, not staged again
    await ledger.post_refund(
        RefundRequest(
            idempotency_key="tsql-refund-1",
            customer_id=first.id,
            date=date(2026, 12, 2),
            amount=half,
            applications=(Application(invoice.id, half),),
            reference="PayTrace 1 refund",
        )
    )
    # A receipt the import refuses (more applied than the invoice owes), then staged again.
    too_much = ReceiptRequest(
        idempotency_key="tsql-receipt-2",
        customer_id=first.id,
        date=date(2026, 12, 3),
        amount=Money(invoice.total.minor * 3, "USD"),
        applications=(Application(invoice.id, Money(invoice.total.minor * 3, "USD")),),
        reference="PayTrace 2",
    )
    with pytest.raises(Rejected):
        await ledger.post_receipt(too_much)
    with erp.begin() as conn:  # the operator "fixes" nothing; the retry stages it again
        conn.execute(
            update(StgCashRcpt)
            .where(StgCashRcpt.c.ImportReference == "tsql-receipt-2")
            .values(ProcessStatus=FAILED)
        )
    with pytest.raises(Rejected):
        await ledger.post_receipt(too_much)
    [p async for p in ledger.payments()]


def test_every_statement_renders_for_sql_server(connector_sql: list[Rendered]) -> None:
    verbs = {r.verb for r in connector_sql}
    # SAVE/RELEASE: the savepoint around a first staging (two workers meet at the unique
    # constraint); SQL Server has no RELEASE SAVEPOINT and the dialect never sends one.
    assert verbs == {"SELECT", "INSERT", "UPDATE", "DELETE", "SAVE", "RELEASE"}, verbs
    assert all(r.sql.startswith("SAVE TRANSACTION ") for r in connector_sql if r.verb == "SAVE")
    touched = set().union(*(r.tables for r in connector_sql))
    expected = {
        "tsmCompany",
        "tmcCurrency",
        "tarCustomer",
        "tciAddress",
        "tciContact",
        "tarInvoice",
        "tarInvoiceDetl",
        "tarInvoiceLineDist",
        "tciSTaxTran",
        "timItem",
        "tciUnitMeasure",
        "tarCustPmt",
        "tarPmtAppl",
        "tglAccount",
        *STAGING,
    }
    assert expected <= touched, expected - touched
    for r in connector_sql:
        assert not re.search(r"\bLIMIT\b", r.sql), r.sql
        assert "OFFSET" not in r.sql or "ORDER BY" in r.sql, r.sql
        assert not re.search(r"\bFOR UPDATE\b|\bRETURNING\b|\bNULLS (FIRST|LAST)\b", r.sql), r.sql
        assert "?" not in r.sql, r.sql  # SQLAlchemy's own binds, never a raw placeholder
        assert "%s" not in r.sql, r.sql


def test_batched_reads_page_with_top_and_a_keyset(connector_sql: list[Rendered]) -> None:
    paged = [
        reads.customer_page_query("SOA", None, (datetime(2026, 1, 1), 10)),
        reads.customer_page_query("SOA", datetime(2026, 1, 1), None),
        reads.payment_page_query("SOA", 1000),
        recent_customers_query("SOA", 20),
    ]
    for query in paged:
        sql = _render(query, []).sql
        assert re.match(r"SELECT TOP \d+ ", sql), sql
        assert "ORDER BY" in sql, sql
    keyset = _render(paged[0], []).sql
    assert "[tarCustomer].[UpdateDate] >" in keyset, keyset
    assert "[tarCustomer].[CustKey] >" in keyset, keyset
    # SQL Server takes at most 2,100 parameters a statement: a page's keys go in one IN.
    assert reads.BATCH < SQL_SERVER_MAX_PARAMETERS
    recorded_tops = [r.sql for r in connector_sql if r.sql.startswith("SELECT TOP")]
    assert any("FROM [tarCustomer]" in sql for sql in recorded_tops), recorded_tops
    assert any("FROM [tarCustPmt]" in sql for sql in recorded_tops), recorded_tops


def test_inserts_into_staging_leave_identity_to_sql_server(
    connector_sql: list[Rendered],
) -> None:
    inserts = [r for r in connector_sql if r.verb == "INSERT"]
    assert {t for r in inserts for t in r.tables} == STAGING
    for r in inserts:
        # OUTPUT without INTO fails on a table with a trigger; the key is not needed.
        assert "OUTPUT" not in r.sql, r.sql
        columns = re.search(r"\(([^)]*)\) VALUES", r.sql)
        assert columns is not None, r.sql
        assert not IDENTITY_COLUMNS & set(re.findall(r"\[?(\w+)\]?", columns.group(1))), r.sql
    for table in (StgCashRcpt, StgCashRcptAppl, StgCustomer):
        ddl = " ".join(str(CreateTable(table).compile(dialect=DIALECT)).split())
        assert "[RowKey] INTEGER NOT NULL IDENTITY" in ddl, ddl
        assert "NUMERIC(15, 3)" in ddl or table is StgCustomer, ddl


def test_the_staging_row_a_worker_changes_is_read_with_an_update_lock(
    connector_sql: list[Rendered],
) -> None:
    decides = [
        r
        for r in connector_sql
        if r.verb == "SELECT"
        and re.search(r"FROM \[(StgCashRcpt|StgCustomer)\]", r.sql)
        and "[ProcessStatus]" in r.sql.split(" FROM ")[0]
        and "[ErrorMessage]" not in r.sql  # the outcome polls read ErrorMessage too
    ]
    assert {t for r in decides for t in r.tables} == {"StgCashRcpt", "StgCustomer"}
    for r in decides:
        assert re.search(r"FROM \[Stg\w+\] WITH \(UPDLOCK, ROWLOCK\) WHERE", r.sql), r.sql
    polls = [r for r in connector_sql if r.verb == "SELECT" and "[ErrorMessage]" in r.sql]
    assert polls
    for r in polls:
        # Waiting for the import must see the row even while the import holds it.
        assert not re.search(r"READPAST|NOLOCK|UPDLOCK", r.sql), r.sql
    for r in connector_sql:
        if r.verb == "SELECT" and not r.tables & STAGING:
            assert "WITH (" not in r.sql, r.sql  # ERP tables are only read, never locked
