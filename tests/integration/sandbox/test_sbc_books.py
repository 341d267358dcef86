"""State rules of the SBC simulator: allocation arithmetic, refunds, voids, lockdown."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.sandbox.sbc.books import Books
from ledgerlink.sandbox.sbc.errors import SbcError
from ledgerlink.sandbox.sbc.seed import LEAD_BUSINESS_ID, seed
from ledgerlink.sandbox.sbc.store import Store
from tests.support.sbc import SbcClient, sbc_client

TODAY = datetime.now(UTC).date().isoformat()


@pytest.fixture(scope="module")
def sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcClient]:
    with sbc_client(tmp_path_factory.mktemp("sbc-books")) as client:
        yield client


def _customer(sbc: SbcClient, name: str) -> dict[str, Any]:
    return sbc.created("/contacts", "contact", {"name": name, "contact_type_ids": ["CUSTOMER"]})


def _invoice(
    sbc: SbcClient, contact: dict[str, Any], price: str, when: str = TODAY
) -> dict[str, Any]:
    return sbc.created(
        "/sales_invoices",
        "sales_invoice",
        {
            "contact_id": contact["id"],
            "date": when,
            "invoice_lines": [
                {
                    "description": "Dues",
                    "ledger_account_id": sbc.sales_account_id(),
                    "quantity": 1,
                    "unit_price": price,
                }
            ],
        },
    )


def _payment(
    sbc: SbcClient,
    contact: dict[str, Any],
    total: str,
    allocations: list[tuple[str, str]],
    kind: str = "CUSTOMER_RECEIPT",
    when: str = TODAY,
) -> Any:
    return sbc.post(
        "/contact_payments",
        "contact_payment",
        {
            "transaction_type_id": kind,
            "contact_id": contact["id"],
            "bank_account_id": sbc.first("bank_accounts")["id"],
            "payment_method_id": "CREDIT_DEBIT",
            "date": when,
            "total_amount": total,
            "reference": "PayTrace 1",
            "allocated_artefacts": [{"artefact_id": a, "amount": m} for a, m in allocations],
        },
    )


def _amount(value: Any) -> Decimal:
    """An amount of a response: a JSON number (read as float by httpx, whose shortest
    repr is the exact two-decimal value), as a Decimal."""
    assert isinstance(value, int | float), f"amounts are JSON numbers, not {value!r}"
    return Decimal(str(value))


def _balance(sbc: SbcClient, contact: dict[str, Any]) -> Decimal:
    return _amount(sbc.ok(f"/contacts/{contact['id']}")["balance"])


def test_a_receipt_allocated_to_an_invoice_lowers_outstanding_and_balance(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Part Payer")
    invoice = _invoice(sbc, contact, "120.00")
    assert _balance(sbc, contact) == Decimal("120.00")
    assert invoice["status"]["id"] == "UNPAID"
    response = _payment(sbc, contact, "50.00", [(invoice["id"], "50.00")])
    assert response.status_code == 201
    assert response.json()["allocated_artefacts"][0]["artefact"]["id"] == invoice["id"]
    after = sbc.ok(f"/sales_invoices/{invoice['id']}")
    assert (
        _amount(after["outstanding_amount"]),
        _amount(after["total_paid"]),
        after["status"]["id"],
    ) == (Decimal("70.00"), Decimal("50.00"), "PART_PAID")
    assert _balance(sbc, contact) == Decimal("70.00")
    _payment(sbc, contact, "70.00", [(invoice["id"], "70.00")])
    paid = sbc.ok(f"/sales_invoices/{invoice['id']}")
    assert (_amount(paid["outstanding_amount"]), paid["status"]["id"]) == (0, "PAID")
    assert _balance(sbc, contact) == Decimal("0.00")


def test_what_a_receipt_does_not_allocate_stays_on_account(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Over Payer")
    invoice = _invoice(sbc, contact, "30.00")
    receipt = _payment(sbc, contact, "50.00", [(invoice["id"], "30.00")]).json()
    assert _amount(receipt["payment_on_account"]["outstanding_amount"]) == Decimal("20.00")
    assert _balance(sbc, contact) == Decimal("-20.00")


def test_allocating_more_than_outstanding_or_than_the_total_is_refused(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Careful Payer")
    invoice = _invoice(sbc, contact, "10.00")
    too_much = _payment(sbc, contact, "20.00", [(invoice["id"], "15.00")])
    assert too_much.status_code == 422
    assert too_much.json()[0]["$source"] == "allocated_artefacts[0].amount"
    over_total = _payment(sbc, contact, "5.00", [(invoice["id"], "10.00")])
    assert over_total.status_code == 422
    assert over_total.json()[0]["$source"] == "allocated_artefacts"
    assert _amount(sbc.ok(f"/sales_invoices/{invoice['id']}")["outstanding_amount"]) == Decimal(
        "10.00"
    )
    assert _balance(sbc, contact) == Decimal("10.00")


def test_an_invoice_of_another_contact_cannot_be_paid(sbc: SbcClient) -> None:
    payer, other = _customer(sbc, "Payer"), _customer(sbc, "Someone Else")
    invoice = _invoice(sbc, other, "10.00")
    response = _payment(sbc, payer, "10.00", [(invoice["id"], "10.00")])
    assert response.status_code == 422
    assert "another contact" in response.json()[0]["$message"]


def test_deleting_a_receipt_reopens_the_invoice(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Charged Back")
    invoice = _invoice(sbc, contact, "80.00")
    receipt = _payment(sbc, contact, "80.00", [(invoice["id"], "80.00")]).json()
    assert sbc.delete(f"/contact_payments/{receipt['id']}").status_code == 204
    reopened = sbc.ok(f"/sales_invoices/{invoice['id']}")
    assert (_amount(reopened["outstanding_amount"]), reopened["status"]["id"]) == (
        Decimal("80.00"),
        "UNPAID",
    )
    assert _balance(sbc, contact) == Decimal("80.00")
    assert sbc.get(f"/contact_payments/{receipt['id']}").status_code == 404


def test_a_refund_raises_the_balance_and_can_take_from_a_payment_on_account(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Refunded")
    receipt = _payment(sbc, contact, "40.00", []).json()
    assert _balance(sbc, contact) == Decimal("-40.00")
    refund = _payment(sbc, contact, "15.00", [(receipt["id"], "15.00")], kind="CUSTOMER_REFUND")
    assert refund.status_code == 201, refund.text
    assert _balance(sbc, contact) == Decimal("-25.00")
    assert _amount(
        sbc.ok(f"/contact_payments/{receipt['id']}")["payment_on_account"]["outstanding_amount"]
    ) == Decimal("25.00")
    # the receipt cannot be deleted while its money on account is refunded
    assert sbc.delete(f"/contact_payments/{receipt['id']}").status_code == 422


def test_a_refund_cannot_be_allocated_to_an_invoice(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Wrong Refund")
    invoice = _invoice(sbc, contact, "10.00")
    response = _payment(sbc, contact, "10.00", [(invoice["id"], "10.00")], kind="CUSTOMER_REFUND")
    assert response.status_code == 422


def test_contact_allocations_move_money_on_account_onto_an_invoice(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Later Allocation")
    receipt = _payment(sbc, contact, "25.00", []).json()
    invoice = _invoice(sbc, contact, "60.00")
    response = sbc.post(
        "/contact_allocations",
        "contact_allocation",
        {
            "transaction_type_id": "CUSTOMER_ALLOCATION",
            "contact_id": contact["id"],
            "allocated_artefacts": [
                {"artefact_id": invoice["id"], "amount": "25.00"},
                {"artefact_id": receipt["id"], "amount": "-25.00"},
            ],
        },
    )
    assert response.status_code == 201, response.text
    assert _amount(sbc.ok(f"/sales_invoices/{invoice['id']}")["outstanding_amount"]) == Decimal(
        "35.00"
    )
    assert _amount(
        sbc.ok(f"/contact_payments/{receipt['id']}")["payment_on_account"]["outstanding_amount"]
    ) == Decimal("0.00")
    assert _balance(sbc, contact) == Decimal("35.00")  # allocation moves money, it does not add any
    unbalanced = sbc.post(
        "/contact_allocations",
        "contact_allocation",
        {
            "contact_id": contact["id"],
            "allocated_artefacts": [
                {"artefact_id": invoice["id"], "amount": "5.00"},
                {"artefact_id": receipt["id"], "amount": "-4.00"},
            ],
        },
    )
    assert unbalanced.status_code == 422
    assert sbc.delete(f"/contact_allocations/{response.json()['id']}").status_code == 204
    assert _amount(sbc.ok(f"/sales_invoices/{invoice['id']}")["outstanding_amount"]) == Decimal(
        "60.00"
    )


def test_deleting_an_invoice_voids_it_with_a_reason(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Voided")
    invoice = _invoice(sbc, contact, "45.00")
    assert sbc.delete(f"/sales_invoices/{invoice['id']}").status_code == 422  # reason needed
    answer = sbc.delete(f"/sales_invoices/{invoice['id']}", void_reason="raised twice")
    # SBC answers 200 with the voided invoice (published schema), not an empty 204.
    assert answer.status_code == 200, answer.text
    assert answer.json() == sbc.ok(f"/sales_invoices/{invoice['id']}")
    void = answer.json()
    assert (void["id"], void["status"]["id"], void["void_reason"]) == (
        invoice["id"],
        "VOID",
        "raised twice",
    )
    assert _amount(void["outstanding_amount"]) == 0
    assert _balance(sbc, contact) == Decimal("0.00")
    assert _payment(sbc, contact, "45.00", [(invoice["id"], "45.00")]).status_code == 422


def test_an_invoice_with_payments_cannot_be_voided(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Paid Then Void")
    invoice = _invoice(sbc, contact, "20.00")
    _payment(sbc, contact, "5.00", [(invoice["id"], "5.00")])
    response = sbc.delete(f"/sales_invoices/{invoice['id']}", void_reason="mistake")
    assert response.status_code == 422
    assert "allocated" in response.json()[0]["$message"]


def test_invoice_totals_apply_tax_per_line_rounded_half_up(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Taxed")
    rate = next(
        t for t in sbc.all_items("/tax_rates", attributes="all") if t["percentage"] != "0.00"
    )
    invoice = sbc.created(
        "/sales_invoices",
        "sales_invoice",
        {
            "contact_id": contact["id"],
            "date": TODAY,
            "invoice_lines": [
                {
                    "description": "Book",
                    "ledger_account_id": sbc.sales_account_id(),
                    "quantity": "3",
                    "unit_price": "9.99",
                    "tax_rate_id": rate["id"],
                }
            ],
        },
    )
    net = Decimal("29.97")
    tax = (net * Decimal(rate["percentage"]) / 100).quantize(
        Decimal("0.01"), rounding="ROUND_HALF_UP"
    )
    assert _amount(invoice["net_amount"]) == net
    assert _amount(invoice["tax_amount"]) == tax
    assert _amount(invoice["total_amount"]) == net + tax


def test_amounts_with_more_than_two_decimals_are_refused(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Fractional")
    response = _payment(sbc, contact, "10.005", [])
    assert response.status_code == 422
    assert response.json()[0]["$source"] == "total_amount"


def test_nothing_posts_on_or_before_the_lockdown_date(sbc: SbcClient) -> None:
    lockdown = date.fromisoformat(sbc.ok("/financial_settings")["year_end_lockdown_date"])
    contact = _customer(sbc, "Locked Out")
    on_lockdown = _payment(sbc, contact, "5.00", [], when=lockdown.isoformat())
    assert on_lockdown.status_code == 422
    assert on_lockdown.json()[0]["$source"] == "date"
    assert "lockdown" in on_lockdown.json()[0]["$message"]
    assert (
        _payment(
            sbc, contact, "5.00", [], when=(lockdown + timedelta(days=1)).isoformat()
        ).status_code
        == 201
    )
    invoice = sbc.post(
        "/sales_invoices",
        "sales_invoice",
        {
            "contact_id": contact["id"],
            "date": lockdown.isoformat(),
            "invoice_lines": [
                {
                    "description": "x",
                    "ledger_account_id": sbc.sales_account_id(),
                    "quantity": 1,
                    "unit_price": "1.00",
                }
            ],
        },
    )
    assert invoice.status_code == 422


def test_moving_the_lockdown_date_locks_what_was_posted_before_it(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Late Lock")
    receipt = _payment(sbc, contact, "5.00", []).json()
    original = sbc.ok("/financial_settings")["year_end_lockdown_date"]
    moved = sbc.put("/financial_settings", "financial_settings", {"year_end_lockdown_date": TODAY})
    assert moved.status_code == 200
    assert moved.json()["year_end_lockdown_date"] == TODAY
    try:
        assert sbc.delete(f"/contact_payments/{receipt['id']}").status_code == 422
    finally:
        sbc.put("/financial_settings", "financial_settings", {"year_end_lockdown_date": original})


def test_transactions_record_each_posting(sbc: SbcClient) -> None:
    contact = _customer(sbc, "Audited")
    invoice = _invoice(sbc, contact, "12.34")
    transactions = sbc.all_items("/transactions", contact_id=contact["id"], attributes="all")
    assert [(t["transaction_type"]["id"], _amount(t["total"])) for t in transactions] == [
        ("SALES_INVOICE", Decimal("12.34"))
    ]
    assert invoice["transaction"]["id"] == transactions[0]["id"]


# -- invariants under any sequence of postings --------------------------------------------------

_operations = st.lists(
    st.tuples(
        st.sampled_from(["invoice", "receipt", "refund", "delete_receipt", "void"]),
        st.integers(min_value=1, max_value=50_000),
        st.integers(min_value=0, max_value=100),
    ),
    min_size=1,
    max_size=25,
)


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Books:
    store = Store(tmp_path_factory.mktemp("sbc-books-property"))
    result = Books(store)
    seed(result, SbcConfig(seed_people=0))
    return result


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=_operations)
def test_balances_and_outstanding_amounts_always_add_up(
    books: Books, operations: list[tuple[str, int, int]]
) -> None:
    business = LEAD_BUSINESS_ID
    contact, _ = books.create_contact(
        business, {"name": "Property", "contact_type_ids": ["CUSTOMER"]}
    )
    sales = next(
        a["id"]
        for a in books.store.all(business, "ledger_accounts")
        if a["ledger_account_type_id"] == "SALES"
    )
    bank = books.store.all(business, "bank_accounts")[0]["id"]
    for action, amount, share in operations:
        cents = f"{amount // 100}.{amount % 100:02d}"
        invoices = [
            i
            for i in books.store.all(business, "sales_invoices")
            if i["contact_id"] == contact["id"] and i["status_id"] != "VOID"
        ]
        payments = [
            p
            for p in books.store.all(business, "contact_payments")
            if p["contact_id"] == contact["id"] and not p.get("_deleted")
        ]
        try:
            if action == "invoice":
                books.create_invoice(
                    business,
                    {
                        "contact_id": contact["id"],
                        "date": TODAY,
                        "invoice_lines": [
                            {
                                "description": "x",
                                "ledger_account_id": sales,
                                "quantity": 1,
                                "unit_price": cents,
                            }
                        ],
                    },
                )
            elif action in ("receipt", "refund"):
                allocations = []
                if action == "receipt" and invoices:
                    target = invoices[share % len(invoices)]
                    part = min(target["outstanding_amount"], amount * share // 100)
                    if part > 0:
                        allocations = [
                            {
                                "artefact_id": target["id"],
                                "amount": f"{part // 100}.{part % 100:02d}",
                            }
                        ]
                books.create_payment(
                    business,
                    {
                        "transaction_type_id": "CUSTOMER_RECEIPT"
                        if action == "receipt"
                        else "CUSTOMER_REFUND",
                        "contact_id": contact["id"],
                        "bank_account_id": bank,
                        "date": TODAY,
                        "total_amount": cents,
                        "allocated_artefacts": allocations,
                    },
                )
            elif action == "delete_receipt" and payments:
                books.delete_payment(business, payments[share % len(payments)]["id"])
            elif action == "void" and invoices:
                books.void_invoice(business, invoices[share % len(invoices)]["id"], "property test")
        except SbcError as exc:
            assert exc.status == 422  # noqa: PT017 - refused is fine; the books must still add up
        _assert_books_balance(books, business, contact["id"])


def _assert_books_balance(books: Books, business: str, contact_id: str) -> None:
    invoices = [
        i for i in books.store.all(business, "sales_invoices") if i["contact_id"] == contact_id
    ]
    payments = [
        p
        for p in books.store.all(business, "contact_payments")
        if p["contact_id"] == contact_id and not p.get("_deleted")
    ]
    live = [i for i in invoices if i["status_id"] != "VOID"]
    receipts = sum(
        p["total_amount"] for p in payments if p["transaction_type_id"] == "CUSTOMER_RECEIPT"
    )
    refunds = sum(
        p["total_amount"] for p in payments if p["transaction_type_id"] == "CUSTOMER_REFUND"
    )
    contact = books.store.get(business, "contacts", contact_id)
    assert contact is not None
    assert contact["balance"] == sum(i["total_amount"] for i in live) - receipts + refunds
    allocated = {i["id"]: 0 for i in live}
    for payment in payments:
        for allocation in payment["allocated_artefacts"]:
            if allocation["artefact_id"] in allocated:
                allocated[allocation["artefact_id"]] += allocation["amount"]
    for invoice in live:
        assert 0 <= invoice["outstanding_amount"] <= invoice["total_amount"]
        assert invoice["outstanding_amount"] == invoice["total_amount"] - allocated[invoice["id"]]
        expected = (
            "PAID"
            if invoice["outstanding_amount"] == 0
            else (
                "UNPAID"
                if invoice["outstanding_amount"] == invoice["total_amount"]
                else "PART_PAID"
            )
        )
        assert invoice["status_id"] == expected
