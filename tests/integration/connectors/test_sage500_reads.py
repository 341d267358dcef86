"""Reading Sage 500 tables: customers with addresses and contacts, open invoices in the
currency's precision, incremental by UpdateDate — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, create_engine, insert

from ledgerlink.connectors.sage500 import reads
from ledgerlink.connectors.sage500.tables import (
    metadata,
    tarCustomer,
    tarInvoice,
    tciAddress,
    tciContact,
    tmcCurrency,
)
from ledgerlink.domain.accounts import InvoiceStatus
from ledgerlink.domain.money import Money

T0 = datetime(2026, 3, 1, 9, 0)


@pytest.fixture
def erp(db_url: str) -> Engine:
    engine = create_engine(db_url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(tmcCurrency),
            [
                {"CurrID": "USD", "DigitsAfterDecimal": 2},
                {"CurrID": "KWD", "DigitsAfterDecimal": 3},
            ],
        )
        conn.execute(
            insert(tciAddress),
            [
                {
                    "AddrKey": key,
                    "AddrLine1": f"{key} Main St ",
                    "City": "Austin",
                    "StateID": "TX",
                    "PostalCode": "73301",
                    "CountryID": "USA",
                }
                for key in range(1, 2502)
            ],
        )
        conn.execute(
            insert(tciContact),
            [
                {
                    "CntctKey": key,
                    "Name": f"Person {key}",
                    "EMailAddr": f"p{key}@example.org",
                    "Phone": "+1 555 0100",
                }
                for key in range(1, 2502)
            ],
        )
        conn.execute(
            insert(tarCustomer),
            [
                {
                    "CustKey": key,
                    "CustID": f"C{key:05d}",
                    "CustName": f"Person {key}",
                    "CompanyID": "LLK",
                    "Status": 1,
                    "DfltBillToAddrKey": key,
                    "PrimaryCntctKey": key,
                    "UpdateDate": T0 + timedelta(seconds=key // 3),
                    "UpdateCounter": 1,
                }
                for key in range(1, 2502)
            ],
        )
        conn.execute(
            insert(tarInvoice),
            [
                {
                    "InvcKey": 1,
                    "TranID": "0000001-IN",
                    "CustKey": 1,
                    "CompanyID": "LLK",
                    "CurrID": "USD",
                    "TranDate": T0,
                    "TranAmt": Decimal("100.000"),
                    "Balance": Decimal("40.000"),
                },
                {
                    "InvcKey": 2,
                    "TranID": "0000002-IN",
                    "CustKey": 1,
                    "CompanyID": "LLK",
                    "CurrID": "USD",
                    "TranDate": T0,
                    "TranAmt": Decimal("50.000"),
                    "Balance": Decimal("0.000"),
                },
                {
                    "InvcKey": 3,
                    "TranID": "0000003-IN",
                    "CustKey": 2,
                    "CompanyID": "LLK",
                    "CurrID": "KWD",
                    "TranDate": T0,
                    "TranAmt": Decimal("12.345"),
                    "Balance": Decimal("12.345"),
                },
            ],
        )
    return engine


def test_every_customer_is_read_once_across_batches(erp: Engine) -> None:
    found = list(reads.customers(erp, "LLK", "USD"))
    assert len(found) == 2501
    assert len({c.id for c in found}) == 2501  # ties on UpdateDate do not repeat or skip


def test_a_customer_carries_its_bill_to_address_and_contact(erp: Engine) -> None:
    customer = reads.customer_by(erp, "LLK", "USD", CustID="C00007")
    assert customer is not None
    assert customer.address.line1 == "7 Main St"
    assert customer.address.country == "US"
    assert customer.email == "p7@example.org"


def test_incremental_reads_start_at_the_cursor(erp: Engine) -> None:
    since = T0 + timedelta(seconds=800)
    changed = list(reads.customers(erp, "LLK", "USD", changed_since=since))
    assert changed
    assert all(c.updated_at is not None and c.updated_at >= since for c in changed)
    assert len(changed) == len([k for k in range(1, 2502) if k // 3 >= 800])  # inclusive


def test_open_invoices_are_exact_in_the_currency_precision(erp: Engine) -> None:
    digits = reads.currency_digits(erp)
    open_invoices = {i.number: i for i in reads.invoices(erp, "LLK", digits)}
    assert set(open_invoices) == {"0000001-IN", "0000003-IN"}
    assert open_invoices["0000001-IN"].outstanding == Money(4000, "USD")
    assert open_invoices["0000001-IN"].status is InvoiceStatus.PART_PAID
    assert open_invoices["0000003-IN"].outstanding == Money(12345, "KWD")


def test_an_amount_finer_than_the_currency_is_refused_not_rounded() -> None:
    with pytest.raises(ValueError, match="more than 2 decimal places"):
        reads.to_money(Decimal("1.005"), "USD", 2)
