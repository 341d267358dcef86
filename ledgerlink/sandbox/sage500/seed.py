"""Seed data: a company, currencies with their decimal digits, GL accounts, the demo
population as customers (addresses, contacts) and their invoices, most of them open.

Person *n* of :mod:`ledgerlink.sandbox.people` is customer ``C{n:05d}`` with ``CustKey`` *n*,
so the other simulators and the member registry agree on who is who. Invoice ``TranID`` is
``{InvcKey:010d}-IN`` style (13 characters, as in ``tarInvoice``).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, insert, select

from ledgerlink.connectors.sage500.tables import (
    tarCustomer,
    tarInvoice,
    tarInvoiceDetl,
    tarInvoiceLineDist,
    tciAddress,
    tciContact,
    tciUnitMeasure,
    tglAccount,
    timItem,
    tmcCurrency,
    tsmCompany,
)
from ledgerlink.sandbox.people import population
from ledgerlink.sandbox.sage500.config import Sage500Config

#: Sage 500 keeps decimal digits per currency; JPY and KWD show why it matters.
CURRENCIES = {"USD": 2, "CAD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3}
GL_ACCOUNTS = (
    ("1000-00", "Operating Cash"),
    ("1010-00", "Cash - Card Clearing"),
    ("1015-00", "Chargebacks Receivable"),
    ("1020-00", "Cash - ACH Clearing"),
    ("1200-00", "Accounts Receivable"),
    ("4000-00", "Membership Dues"),
    ("4010-00", "Event Registrations"),
    ("6150-00", "Merchant Fees"),
)
#: Sage 500 tarInvoice.TranType for an AR invoice.
INVOICE_TRAN_TYPE = 501
COUNTRY_CODES = {"US": "USA", "CA": "CAN", "GB": "GBR"}
DUES = {"Individual": 120, "Student": 45, "Family": 180, "Corporate": 950, "Life": 2500}
#: The items invoices bill (timItem: ItemKey, ItemID) and their one unit of measure.
ITEMS = ((1, "DUES"), (2, "EVENT-REG"))
EACH = 1


def invoice_tran_id(invoice_key: int) -> str:
    return f"{invoice_key:010d}-IN"


def seed(engine: Engine, config: Sage500Config, now: datetime | None = None) -> bool:
    """Fill an empty ERP database; one already seeded is left alone. True if it seeded."""
    now = (now or datetime.now(UTC)).replace(tzinfo=None, microsecond=0)
    with engine.begin() as conn:
        if conn.scalar(select(func.count()).select_from(tsmCompany)):
            return False
        conn.execute(
            insert(tsmCompany),
            [
                {
                    "CompanyID": config.company_id,
                    "CompanyName": config.company_name,
                    "CurrID": config.home_currency,
                }
            ],
        )
        conn.execute(
            insert(tmcCurrency),
            [{"CurrID": c, "DigitsAfterDecimal": d} for c, d in CURRENCIES.items()],
        )
        conn.execute(
            insert(tglAccount),
            [
                {
                    "GLAcctKey": key,
                    "GLAcctNo": number,
                    "Description": name,
                    "CompanyID": config.company_id,
                }
                for key, (number, name) in enumerate(GL_ACCOUNTS, start=1)
            ],
        )
        people = population(config.seed_people)
        rng = random.Random(500_500)
        addresses, contacts, customers, invoices = [], [], [], []
        lines: list[dict[str, object]] = []  # one line per invoice (Level 3 data)
        distributions: list[dict[str, object]] = []
        invoice_key = 0
        for person in people:
            key = person.number
            addresses.append(
                {
                    "AddrKey": key,
                    "AddrName": person.full_name[:40],
                    "AddrLine1": person.address_line_1,
                    "AddrLine2": person.address_line_2 or None,
                    "City": person.city,
                    "StateID": person.region,
                    "PostalCode": person.postal_code,
                    "CountryID": COUNTRY_CODES.get(person.country, person.country),
                }
            )
            contacts.append(
                {
                    "CntctKey": key,
                    "Name": person.full_name[:40],
                    "EMailAddr": person.email,
                    "Phone": person.phone[:17],
                }
            )
            created = datetime.combine(person.joined_on, datetime.min.time())
            customers.append(
                {
                    "CustKey": key,
                    "CustID": person.customer_id,
                    "CustName": person.full_name[:40],
                    "CompanyID": config.company_id,
                    "CustClassKey": 1,
                    "CreditLimit": Decimal("5000.000"),
                    "Status": 2 if key % 50 == 0 else 1,  # a few inactive customers
                    "PrimaryAddrKey": key,
                    "DfltBillToAddrKey": key,
                    "PrimaryCntctKey": key,
                    "CreateDate": created,
                    "UpdateDate": now - timedelta(days=rng.randint(1, 400)),
                    "UpdateCounter": 1,
                }
            )
            count = rng.randint(
                max(config.invoices_per_customer - 1, 0), config.invoices_per_customer + 1
            )
            for index in range(count):
                invoice_key += 1
                issued = now - timedelta(days=rng.randint(3, 330))
                amount = Decimal(
                    DUES[person.membership_type] if index == 0 else rng.choice((25, 40, 75, 150))
                )
                roll = rng.random()
                balance = amount if roll < 0.8 else (amount / 2 if roll < 0.9 else Decimal(0))
                dues = index == 0
                lines.append(
                    {
                        "InvoiceLineKey": invoice_key,
                        "InvcKey": invoice_key,
                        "SeqNo": 1,
                        "ItemKey": ITEMS[0][0] if dues else ITEMS[1][0],
                        "Description": "Annual membership dues" if dues else "Event registration",
                        "UnitMeasKey": EACH,
                        "UnitPrice": amount,
                        "ExtAmt": amount,
                        "TradeDiscAmt": Decimal(0),
                        "CmntOnly": 0,
                    }
                )
                distributions.append(
                    {
                        "InvoiceLineDistKey": invoice_key,
                        "InvoiceLineKey": invoice_key,
                        "QtyShipped": Decimal(1),
                        "STaxTranKey": None,
                    }
                )
                invoices.append(
                    {
                        "InvcKey": invoice_key,
                        "TranID": invoice_tran_id(invoice_key),
                        "TranNo": f"{invoice_key:010d}",
                        "TranType": INVOICE_TRAN_TYPE,
                        "TranDate": issued,
                        "PostDate": issued,
                        "DueDate": issued + timedelta(days=30),
                        "TranAmt": amount,
                        "TranAmtHC": amount,
                        "Balance": balance,
                        "BalanceHC": balance,
                        "CustKey": key,
                        "CompanyID": config.company_id,
                        "CurrID": config.home_currency,
                        "CurrExchRate": Decimal(1),
                        "Status": 1,
                        "UpdateCounter": 1,
                    }
                )
        for table, rows in (
            (tciAddress, addresses),
            (tciContact, contacts),
            (tarCustomer, customers),
            (tarInvoice, invoices),
            (
                timItem,
                [{"ItemKey": k, "ItemID": i, "CompanyID": config.company_id} for k, i in ITEMS],
            ),
            (
                tciUnitMeasure,
                [{"UnitMeasKey": EACH, "UnitMeasID": "EA", "CompanyID": config.company_id}],
            ),
            (tarInvoiceDetl, lines),
            (tarInvoiceLineDist, distributions),
        ):
            if rows:
                conn.execute(insert(table), rows)
    return True
