"""Seed data: two businesses, their reference lists, and the demo population's contacts.

Business one ("Lakeside Members Association", the lead business) holds the people of
:mod:`ledgerlink.sandbox.people` who are SBC contacts, each with membership invoices:
most unpaid, some part paid, some paid by an earlier receipt. Business two exists so that
``X-Business`` scoping can be seen; it has a few contacts of its own. Dates are relative to
the day of seeding and always after the lockdown date (the end of the last financial
year), so everything seeded can still be paid.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from ledgerlink.sandbox.people import Person, population
from ledgerlink.sandbox.sbc.books import Books
from ledgerlink.sandbox.sbc.config import SbcConfig
from ledgerlink.sandbox.sbc.store import Record, new_id

SEEDED = "seeded"
LEAD_BUSINESS_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
SECOND_BUSINESS_ID = "0f9e8d7c6b5a49382716f5e4d3c2b1a0"

CURRENCIES = {
    "USD": "US Dollar (USD)",
    "CAD": "Canadian Dollar (CAD)",
    "EUR": "Euro (EUR)",
    "GBP": "Pound Sterling (GBP)",
}
COUNTRIES = {
    "US": "United States (US)",
    "CA": "Canada (CA)",
    "GB": "United Kingdom (GB)",
    "IE": "Ireland (IE)",
    "DE": "Germany (DE)",
    "FR": "France (FR)",
    "MX": "Mexico (MX)",
}
PAYMENT_METHODS = {
    "BANK_TRANSFER": "Bank Transfer",
    "CASH": "Cash",
    "CHECK": "Check",
    "CREDIT_DEBIT": "Credit/Debit Card",
    "ELECTRONIC": "Electronic",
}
#: (nominal code, name, type id, type name)
LEDGER_ACCOUNTS = (
    (1000, "Operating Checking", "BANK", "Bank"),
    (1010, "Card Clearing", "BANK", "Bank"),
    (1200, "Accounts Receivable", "CURRENT_ASSETS", "Current Assets"),
    (2100, "Sales Tax Payable", "CURRENT_LIABILITY", "Current Liabilities"),
    (4000, "Membership Dues", "SALES", "Sales"),
    (4010, "Event Registrations", "SALES", "Sales"),
    (4020, "Publications", "SALES", "Sales"),
    (4900, "Donations", "OTHER_INCOME", "Other Income"),
    (6100, "Merchant Fees", "OVERHEADS", "Overheads"),
)
DUES = {"Individual": 12000, "Student": 4500, "Family": 18000, "Corporate": 95000, "Life": 250000}


def seed(books: Books, config: SbcConfig, today: date | None = None) -> None:
    """Fill an empty store; a store already seeded is left as it is."""
    store = books.store
    if store.meta(SEEDED):
        return
    today = today or books.today()
    with store.unit():
        for code, name in CURRENCIES.items():
            store.put("-", "currencies", {"id": code, "displayed_as": name, "name": name[:-6]})
        for code, name in COUNTRIES.items():
            store.put("-", "countries", {"id": code, "displayed_as": name, "name": name[:-5]})
        for code, name in PAYMENT_METHODS.items():
            store.put("-", "payment_methods", {"id": code, "displayed_as": name, "name": name})
        for business_id, name, lead in (
            (LEAD_BUSINESS_ID, "Lakeside Members Association", True),
            (SECOND_BUSINESS_ID, "Lakeside Foundation", False),
        ):
            books._touch(
                store.put(
                    "-",
                    "businesses",
                    {
                        "id": business_id,
                        "name": name,
                        "displayed_as": name,
                        "is_demo": False,
                        "lead": lead,
                    },
                ),
                created=True,
            )
            _reference_data(books, business_id, today)
        people = population(config.seed_people)
        rng = random.Random(2024)
        sales = _account(books, LEAD_BUSINESS_ID, 4000)
        bank = next(iter(store.all(LEAD_BUSINESS_ID, "bank_accounts")))
        lockdown = date.fromisoformat(books.settings(LEAD_BUSINESS_ID)["year_end_lockdown_date"])
        for person in people:
            if not person.in_sbc:
                continue
            contact, _ = books.create_contact(LEAD_BUSINESS_ID, _contact_body(person))
            _invoices(books, rng, contact, person, sales, bank, today, lockdown)
        second_sales = _account(books, SECOND_BUSINESS_ID, 4900)
        for person in people[:12]:
            contact, _ = books.create_contact(SECOND_BUSINESS_ID, _contact_body(person))
            books.create_invoice(
                SECOND_BUSINESS_ID,
                {
                    "contact_id": contact["id"],
                    "date": max(
                        today - timedelta(days=10), lockdown + timedelta(days=1)
                    ).isoformat(),
                    "invoice_lines": [
                        {
                            "description": "Annual gala pledge",
                            "ledger_account_id": second_sales,
                            "quantity": 1,
                            "unit_price": "250.00",
                        }
                    ],
                },
            )
        store.set_meta(SEEDED, today.isoformat())


def _reference_data(books: Books, business: str, today: date) -> None:
    store = books.store
    year_end = date(today.year, 12, 31)
    store.put(
        business,
        "financial_settings",
        {
            "id": "financial_settings",
            "year_end_date": year_end.isoformat(),
            "year_end_lockdown_date": date(today.year - 1, 12, 31).isoformat(),
            "accounts_start_date": date(today.year - 3, 1, 1).isoformat(),
            "base_currency": "USD",
            "multi_currency_enabled": False,
            "accounting_type": "accrual",
        },
    )
    accounts: dict[int, str] = {}
    for code, name, type_id, type_name in LEDGER_ACCOUNTS:
        record = store.put(
            business,
            "ledger_accounts",
            {
                "id": new_id(),
                "nominal_code": code,
                "name": name,
                "displayed_as": f"{name} ({code})",
                "ledger_account_type_id": type_id,
                "ledger_account_type_name": type_name,
            },
        )
        accounts[code] = record["id"]
    for code, name, kind, kind_name, number in (
        (1000, "Operating Checking", "CHECKING", "Checking", "****4321"),
        (1010, "Card Clearing", "CHECKING", "Checking", "****8765"),
    ):
        store.put(
            business,
            "bank_accounts",
            {
                "id": new_id(),
                "name": name,
                "displayed_as": f"{name} ({code})",
                "nominal_code": code,
                "bank_account_type_id": kind,
                "bank_account_type_name": kind_name,
                "ledger_account_id": accounts[code],
                "account_number": number,
                "currency_id": "USD",
                "balance": 0,
            },
        )
    for name, percentage in (("No Tax", "0.00"), ("Exempt", "0.00"), ("Sales Tax 8.25%", "8.25")):
        store.put(
            business,
            "tax_rates",
            {"id": new_id(), "name": name, "displayed_as": name, "percentage": percentage},
        )


def _account(books: Books, business: str, code: int) -> str:
    return next(
        str(a["id"])
        for a in books.store.all(business, "ledger_accounts")
        if int(a["nominal_code"]) == code
    )


def _contact_body(person: object) -> Record:
    assert isinstance(person, Person)
    return {
        "name": person.sbc_name_variant or person.full_name,
        "contact_type_ids": ["CUSTOMER"],
        "reference": person.member_number,
        "email": person.email,
        "main_address": {
            "address_line_1": person.address_line_1,
            "address_line_2": person.address_line_2,
            "city": person.city,
            "region": person.region,
            "postal_code": person.postal_code,
            "country_id": person.country,
        },
        "main_contact_person": {
            "name": person.full_name,
            "email": person.email,
            "telephone": person.phone,
        },
    }


def _invoices(
    books: Books,
    rng: random.Random,
    contact: Record,
    person: object,
    sales_account: str,
    bank: Record,
    today: date,
    lockdown: date,
) -> None:
    assert isinstance(person, Person)
    earliest = lockdown + timedelta(days=1)
    for index in range(rng.randint(1, 3)):
        issued = max(today - timedelta(days=rng.randint(5, 300)), earliest)
        unit = DUES[person.membership_type] if index == 0 else rng.choice((2500, 4000, 7500))
        description = "Annual membership dues" if index == 0 else "Event registration"
        invoice, _ = books.create_invoice(
            LEAD_BUSINESS_ID,
            {
                "contact_id": contact["id"],
                "date": issued.isoformat(),
                "due_date": (issued + timedelta(days=30)).isoformat(),
                "reference": f"{person.member_number}-{index + 1}",
                "invoice_lines": [
                    {
                        "description": description,
                        "ledger_account_id": sales_account,
                        "quantity": 1,
                        "unit_price": f"{unit // 100}.{unit % 100:02d}",
                    }
                ],
            },
        )
        roll = rng.random()
        if roll < 0.15 or roll > 0.9:
            paid = invoice["total_amount"] if roll < 0.15 else invoice["total_amount"] // 2
            books.create_payment(
                LEAD_BUSINESS_ID,
                {
                    "transaction_type_id": "CUSTOMER_RECEIPT",
                    "contact_id": contact["id"],
                    "bank_account_id": bank["id"],
                    "payment_method_id": "CHECK",
                    "date": issued.isoformat(),
                    "total_amount": f"{paid // 100}.{paid % 100:02d}",
                    "reference": f"CHK {1000 + rng.randint(0, 8999)}",
                    "allocated_artefacts": [
                        {"artefact_id": invoice["id"], "amount": f"{paid // 100}.{paid % 100:02d}"}
                    ],
                },
            )
