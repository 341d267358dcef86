"""Contract tests of the Sage 500 simulator: tables and seed data of the API notes, and an
import procedure that posts staged rows or writes a row-level error back (SQLite and
PostgreSQL)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, insert, inspect, select
from sqlalchemy.exc import IntegrityError

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
from ledgerlink.sandbox import sage500
from ledgerlink.sandbox.faults import FaultInjector, FaultPlan
from ledgerlink.sandbox.people import population
from tests.support.asgi_server import serve_in_thread

CONFIG = sage500.Sage500Config(seed_people=240)


@pytest.fixture
def erp(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    sage500.create_schema(engine)
    sage500.seed(engine, CONFIG)
    yield engine
    engine.dispose()


def _open_invoice(engine: Engine, customer_key: int = 1, index: int = 0) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(tarInvoice)
            .where(tarInvoice.c.CustKey == customer_key, tarInvoice.c.Balance > 0)
            .order_by(tarInvoice.c.InvcKey)
            .offset(index)
        ).first()


def _stage(engine: Engine, reference: str, **values: Any) -> None:
    row = {
        "ImportReference": reference,
        "CompanyID": "SOA",
        "CustID": "C00001",
        "TranType": "CashRcpt",
        "TranDate": datetime(2026, 11, 2),
        "TranAmt": Decimal("10.00"),
        "CurrID": "USD",
        "GLAcctNo": "1010-00",
        **values,
    }
    with engine.begin() as conn:
        conn.execute(insert(StgCashRcpt).values(**row))


def _staged(engine: Engine, reference: str, table: Any = StgCashRcpt) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(table).where(table.c.ImportReference == reference)).one()


def _balance(engine: Engine, invoice_key: int) -> Decimal:
    with engine.connect() as conn:
        return Decimal(
            str(
                conn.scalar(select(tarInvoice.c.Balance).where(tarInvoice.c.InvcKey == invoice_key))
            )
        )


# -- tables and seed data -------------------------------------------------------------------


def test_the_tables_have_sage_500_names_and_columns(erp: Engine) -> None:
    tables = set(inspect(erp).get_table_names())
    assert {
        "tsmCompany",
        "tmcCurrency",
        "tarCustomer",
        "tciAddress",
        "tciContact",
        "tarInvoice",
        "tarCustPmt",
        "tarPmtAppl",
        "tglAccount",
        "StgCashRcpt",
        "StgCashRcptAppl",
        "StgCustomer",
    } <= tables
    invoice_columns = {c["name"] for c in inspect(erp).get_columns("tarInvoice")}
    assert {
        "InvcKey",
        "TranID",
        "TranNo",
        "TranType",
        "TranDate",
        "PostDate",
        "DueDate",
        "TranAmt",
        "TranAmtHC",
        "Balance",
        "BalanceHC",
        "CustKey",
        "CompanyID",
        "CurrID",
        "CurrExchRate",
        "Status",
        "UpdateCounter",
    } <= invoice_columns


def test_the_seed_has_a_company_currencies_customers_and_open_invoices(erp: Engine) -> None:
    with erp.connect() as conn:
        assert conn.execute(select(tsmCompany.c.CompanyID, tsmCompany.c.CurrID)).all() == [
            ("SOA", "USD")
        ]
        digits = dict(
            conn.execute(select(tmcCurrency.c.CurrID, tmcCurrency.c.DigitsAfterDecimal)).all()
        )
        assert (digits["USD"], digits["JPY"], digits["KWD"]) == (2, 0, 3)
        customers = conn.execute(
            select(
                tarCustomer.c.CustID,
                tarCustomer.c.CustName,
                tciAddress.c.City,
                tciContact.c.EMailAddr,
            )
            .join(tciAddress, tciAddress.c.AddrKey == tarCustomer.c.DfltBillToAddrKey)
            .join(tciContact, tciContact.c.CntctKey == tarCustomer.c.PrimaryCntctKey)
        ).all()
        assert len(customers) >= 200
        assert all(c.City and c.EMailAddr for c in customers)
        open_invoices = conn.scalar(
            select(func.count()).select_from(tarInvoice).where(tarInvoice.c.Balance != 0)
        )
        assert open_invoices >= 1000
        assert conn.scalar(select(func.count()).select_from(tglAccount)) >= 5


def test_the_same_people_as_the_other_simulators(erp: Engine) -> None:
    people = population(240)
    with erp.connect() as conn:
        seeded = dict(conn.execute(select(tarCustomer.c.CustID, tarCustomer.c.CustName)).all())
    assert all(seeded[p.customer_id] == p.full_name for p in people)


def test_seeding_twice_adds_nothing(erp: Engine) -> None:
    assert sage500.seed(erp, CONFIG) is False
    with erp.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(tarCustomer)) == 240


# -- the import procedure --------------------------------------------------------------------


def test_a_staged_receipt_is_posted_applied_and_lowers_the_invoice_balance(erp: Engine) -> None:
    invoice = _open_invoice(erp)
    part = Decimal(str(invoice.Balance)) / 2
    _stage(
        erp,
        "paytrace:1:sale",
        TranAmt=part + Decimal("5.00"),
        ApplyToInvcID=invoice.TranID,
        PmtAmt=part,
        TranCmnt="PayTrace 1 APPROVED",
    )
    summary = sage500.ImportProcessor(erp, CONFIG).run_once()
    assert (summary.posted, summary.failed) == (1, 0)
    staged = _staged(erp, "paytrace:1:sale")
    assert (staged.ProcessStatus, staged.ErrorMessage) == (POSTED, None)
    with erp.connect() as conn:
        payment = conn.execute(
            select(tarCustPmt).where(tarCustPmt.c.CustPmtKey == staged.CustPmtKey)
        ).one()
        application = conn.execute(
            select(tarPmtAppl).where(tarPmtAppl.c.ApplyFromPmtKey == payment.CustPmtKey)
        ).one()
    assert Decimal(str(payment.TranAmt)) == part + 5
    assert Decimal(str(payment.UnappliedAmt)) == Decimal("5.00")
    assert (application.ApplyToInvcKey, Decimal(str(application.PmtAmt))) == (invoice.InvcKey, part)
    assert _balance(erp, invoice.InvcKey) == Decimal(str(invoice.Balance)) - part


def test_more_applications_come_from_the_application_staging_table(erp: Engine) -> None:
    first, second = _open_invoice(erp, 2, 0), _open_invoice(erp, 2, 1)
    total = Decimal(str(first.Balance)) + Decimal(str(second.Balance))
    _stage(erp, "multi", CustID="C00002", TranAmt=total)
    with erp.begin() as conn:
        conn.execute(
            insert(StgCashRcptAppl),
            [
                {
                    "ImportReference": "multi",
                    "ApplyToInvcID": first.TranID,
                    "PmtAmt": first.Balance,
                },
                {
                    "ImportReference": "multi",
                    "ApplyToInvcID": second.TranID,
                    "PmtAmt": second.Balance,
                },
            ],
        )
    sage500.ImportProcessor(erp, CONFIG).run_once()
    assert _staged(erp, "multi").ProcessStatus == POSTED
    assert _balance(erp, first.InvcKey) == 0
    assert _balance(erp, second.InvcKey) == 0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"CustID": "C99999"}, "Customer 'C99999' does not exist"),
        ({"CustID": "C00050"}, "inactive"),
        ({"GLAcctNo": "9999-99"}, "GLAcctNo '9999-99'"),
        ({"CurrID": "XXX"}, "CurrID 'XXX'"),
        ({"TranAmt": Decimal("10.005")}, "more decimal places than USD"),
        ({"TranAmt": Decimal("0")}, "TranAmt must be greater than zero"),
        ({"TranType": "Fee"}, "GL journal"),
        ({"CompanyID": "XYZ"}, "CompanyID 'XYZ'"),
        (
            {"ApplyToInvcID": "0000999999-IN", "PmtAmt": Decimal("1.00")},
            "is not an invoice of customer",
        ),
    ],
)
def test_a_row_that_cannot_post_gets_its_error_and_changes_nothing(
    erp: Engine, values: dict[str, Any], message: str
) -> None:
    _stage(erp, "bad", **values)
    summary = sage500.ImportProcessor(erp, CONFIG).run_once()
    staged = _staged(erp, "bad")
    assert (summary.failed, staged.ProcessStatus, staged.CustPmtKey) == (1, FAILED, None)
    assert message in staged.ErrorMessage
    with erp.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(tarCustPmt)) == 0


def test_paying_more_than_the_invoice_balance_is_refused(erp: Engine) -> None:
    invoice = _open_invoice(erp)
    too_much = Decimal(str(invoice.Balance)) + 1
    _stage(erp, "over", TranAmt=too_much, ApplyToInvcID=invoice.TranID, PmtAmt=too_much)
    sage500.ImportProcessor(erp, CONFIG).run_once()
    assert "exceeds the balance" in _staged(erp, "over").ErrorMessage
    assert _balance(erp, invoice.InvcKey) == Decimal(str(invoice.Balance))


def test_applications_may_not_exceed_the_receipt(erp: Engine) -> None:
    invoice = _open_invoice(erp)
    _stage(
        erp, "short", TranAmt=Decimal("1.00"), ApplyToInvcID=invoice.TranID, PmtAmt=Decimal("2.00")
    )
    sage500.ImportProcessor(erp, CONFIG).run_once()
    assert "exceed TranAmt" in _staged(erp, "short").ErrorMessage


def test_a_refund_reopens_the_invoice_it_names(erp: Engine) -> None:
    invoice = _open_invoice(erp, 3)
    amount = Decimal(str(invoice.Balance))
    _stage(
        erp, "sale", CustID="C00003", TranAmt=amount, ApplyToInvcID=invoice.TranID, PmtAmt=amount
    )
    _stage(
        erp,
        "refund",
        CustID="C00003",
        TranType="Refund",
        TranAmt=amount,
        ApplyToInvcID=invoice.TranID,
        PmtAmt=amount,
    )
    sage500.ImportProcessor(erp, CONFIG).run_once()
    assert _staged(erp, "refund").ProcessStatus == POSTED
    assert _balance(erp, invoice.InvcKey) == amount
    with erp.connect() as conn:
        refund = conn.execute(
            select(tarCustPmt).where(tarCustPmt.c.CustPmtKey == _staged(erp, "refund").CustPmtKey)
        ).one()
    assert Decimal(str(refund.TranAmt)) == -amount


def test_an_import_reference_is_staged_once(erp: Engine) -> None:
    _stage(erp, "once")
    with pytest.raises(IntegrityError):
        _stage(erp, "once")


def test_staged_customers_are_created_or_updated(erp: Engine) -> None:
    with erp.begin() as conn:
        for row in [
            {
                "ImportReference": "new",
                "CompanyID": "SOA",
                "CustID": "M00999",
                "CustName": "New Member",
                "AddrLine1": "1 Lake Rd",
                "City": "Madison",
                "StateID": "WI",
                "PostalCode": "53703",
                "CountryID": "USA",
                "EMailAddr": "new@example.org",
            },
            {
                "ImportReference": "upd",
                "CompanyID": "SOA",
                "CustID": "C00004",
                "CustName": "Renamed Person",
                "City": "Austin",
                "CountryID": "USA",
            },
            {"ImportReference": "nameless", "CompanyID": "SOA", "CustID": "C00005", "CustName": ""},
        ]:
            conn.execute(insert(StgCustomer).values(**row))
        before = conn.execute(select(tarCustomer).where(tarCustomer.c.CustID == "C00004")).one()
    sage500.ImportProcessor(erp, CONFIG).run_once()
    created, updated = _staged(erp, "new", StgCustomer), _staged(erp, "upd", StgCustomer)
    assert created.ProcessStatus == POSTED
    assert updated.ProcessStatus == POSTED
    assert _staged(erp, "nameless", StgCustomer).ErrorMessage == "CustName is required"
    with erp.connect() as conn:
        new = conn.execute(
            select(tarCustomer.c.CustName, tciAddress.c.City, tciContact.c.EMailAddr)
            .join(tciAddress, tciAddress.c.AddrKey == tarCustomer.c.DfltBillToAddrKey)
            .join(tciContact, tciContact.c.CntctKey == tarCustomer.c.PrimaryCntctKey)
            .where(tarCustomer.c.CustKey == created.CustKey)
        ).one()
        after = conn.execute(select(tarCustomer).where(tarCustomer.c.CustID == "C00004")).one()
    assert tuple(new) == ("New Member", "Madison", "new@example.org")
    assert (after.CustName, after.UpdateCounter) == ("Renamed Person", before.UpdateCounter + 1)
    assert after.UpdateDate > before.UpdateDate


# -- faults ---------------------------------------------------------------------------------------


def test_a_lock_timeout_leaves_the_row_pending_and_the_next_pass_posts_it(erp: Engine) -> None:
    injector = FaultInjector(FaultPlan(lock_timeout_rate=1.0))
    processor = sage500.ImportProcessor(erp, CONFIG, faults=injector)
    _stage(erp, "locked")
    assert processor.run_once().retried == 1
    staged = _staged(erp, "locked")
    assert (staged.ProcessStatus, staged.Attempts) == (PENDING, 1)
    assert "Lock request time out" in staged.ErrorMessage
    injector.replace(FaultPlan())
    processor.run_once()
    assert _staged(erp, "locked").ProcessStatus == POSTED


def test_an_injected_import_error_fails_the_row(erp: Engine) -> None:
    processor = sage500.ImportProcessor(
        erp, CONFIG, faults=FaultInjector(FaultPlan(import_error_rate=1.0))
    )
    _stage(erp, "rejected")
    processor.run_once()
    staged = _staged(erp, "rejected")
    assert staged.ProcessStatus == FAILED
    assert "rejected this row" in staged.ErrorMessage


# -- flat files ----------------------------------------------------------------------------------


def _results(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["ImportReference"]: row for row in csv.DictReader(handle)}


def test_flat_file_receipts_are_imported_and_answered_in_the_outbox(
    erp: Engine, tmp_path: Path
) -> None:
    config = CONFIG.model_copy(
        update={"inbox_dir": str(tmp_path / "in"), "outbox_dir": str(tmp_path / "out")}
    )
    processor = sage500.ImportProcessor(erp, config)
    (tmp_path / "in").mkdir()
    invoice = _open_invoice(erp, 6)
    lines = [
        "ImportReference,CompanyID,CustID,TranType,TranDate,TranAmt,CurrID,GLAcctNo,TranCmnt,ApplyToInvcID,PmtAmt",
        f"f1,SOA,C00006,CashRcpt,2026-11-02,{invoice.Balance},USD,1010-00,PayTrace 7,"
        f"{invoice.TranID},{invoice.Balance}",
        "f2,SOA,C00006,CashRcpt,2026-11-02,12.5x,USD,1010-00,,,",
        "f3,SOA,C99999,CashRcpt,2026-11-02,5.00,USD,1010-00,,,",
    ]
    (tmp_path / "in" / "batch-1.csv").write_text("\n".join(lines) + "\n")
    [written] = processor.process_files_once()
    results = _results(Path(written))
    assert results["f1"]["Status"] == "Posted"
    assert results["f1"]["Key"]
    assert results["f2"]["Status"] == "Failed"
    assert "TranAmt '12.5x' is not a number" in results["f2"]["ErrorMessage"]
    assert results["f3"]["Status"] == "Failed"
    assert "C99999" in results["f3"]["ErrorMessage"]
    assert _balance(erp, invoice.InvcKey) == 0
    assert (tmp_path / "in" / "processed" / "batch-1.csv").exists()
    # the same file again reports the earlier outcome and posts nothing twice
    (tmp_path / "in" / "batch-1-again.csv").write_text("\n".join(lines[:2]) + "\n")
    [again] = processor.process_files_once()
    assert _results(Path(again))["f1"]["Key"] == results["f1"]["Key"]
    with erp.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(tarCustPmt)) == 1


def test_the_admin_endpoint_reports_state_and_runs_the_import(erp: Engine) -> None:
    injector = FaultInjector()
    processor = sage500.ImportProcessor(erp, CONFIG, faults=injector)
    _stage(erp, "via-admin")
    with serve_in_thread(sage500.create_admin_app(erp, CONFIG, processor, injector)) as base:
        state = httpx.get(f"{base}/_sandbox/state").json()
        assert state["staging"]["cash_receipts"]["pending"] == 1
        assert state["open_invoices"] >= 1000
        ran = httpx.post(f"{base}/_sandbox/import").json()
        assert ran["posted"] == 1
        assert (
            httpx.put(f"{base}/_sandbox/faults", json={"lock_timeout_rate": 0.5}).status_code == 200
        )
        assert injector.plan.lock_timeout_rate == 0.5


def test_reset_drops_the_simulator_tables(db_url: str) -> None:
    engine = create_engine(db_url)
    sage500.create_schema(engine)
    sage500.reset(db_url)
    assert "tarCustomer" not in inspect(engine).get_table_names()
    engine.dispose()
