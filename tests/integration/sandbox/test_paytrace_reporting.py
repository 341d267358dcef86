"""Contract tests of the PayTrace simulator: exports, customers, batches and disputes."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.integration.sandbox.test_paytrace_api import MASTERCARD, PayTrace, card, running

SETTLED_FORMAT = re.compile(r"^\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} (AM|PM)$")


@pytest.fixture
def paytrace(tmp_path: Path) -> Iterator[PayTrace]:
    with running(tmp_path) as client:
        yield client


def us(day: date) -> str:
    return day.strftime("%m/%d/%Y")


# -- exports -----------------------------------------------------------------------------------


def test_export_by_id_has_the_documented_shape(paytrace: PayTrace) -> None:
    sale = paytrace.sale(
        "42.50",
        customer_reference_id="PO-9",
        billing_address={"name": "Ada Patel", "street_address": "1 Oak St", "zip": "97201"},
    )
    response = paytrace.post(
        "/v1/transactions/export/by_id", {"transaction_id": sale["transaction_id"]}
    )
    body = response.json()
    assert body["success"] is True
    assert body["response_code"] == 100
    exported = body["transactions"][0]
    assert exported["transaction_type"] == "SALE"
    assert exported["amount"] == 42.5
    assert exported["masked_card_number"] == "xxxxxxxxxxxx5439"
    assert exported["status_message"] == "Pending settlement"
    assert exported["settled"] == ""
    assert exported["billing_address"]["name"] == "Ada Patel"
    assert set(exported["created"]) == {"through", "at", "by", "from_ip"}
    assert exported["created"]["by"] == "ledgerlink-demo"
    assert SETTLED_FORMAT.match(exported["created"]["at"])


def test_settled_time_uses_the_paytrace_format(paytrace: PayTrace) -> None:
    sale = paytrace.sale("11.00")["transaction_id"]
    paytrace.settle()
    exported = paytrace.export(sale)
    assert exported["status_message"] == "Settled"
    assert SETTLED_FORMAT.match(exported["settled"]), exported["settled"]


def test_export_by_date_range_filters_by_type_and_text(paytrace: PayTrace) -> None:
    sale = paytrace.sale("13.00", invoice_id="INV-FIND-ME")["transaction_id"]
    paytrace.post("/v1/transactions/refund/keyed", {"amount": "1.00", "credit_card": card()})
    today = date.today()
    window = {
        "start_date": us(today - timedelta(days=1)),
        "end_date": us(today + timedelta(days=1)),
    }
    found = paytrace.post(
        "/v1/transactions/export/by_date_range", {**window, "including_text": "find-me"}
    ).json()["transactions"]
    assert [t["transaction_id"] for t in found] == [sale]
    refunds = paytrace.post(
        "/v1/transactions/export/by_date_range", {**window, "transaction_type": "REFUND"}
    ).json()["transactions"]
    assert refunds
    assert all(t["transaction_type"] == "REFUND" for t in refunds)


def test_export_by_date_range_includes_seeded_history(paytrace: PayTrace) -> None:
    today = date.today()
    history = paytrace.post(
        "/v1/transactions/export/by_date_range",
        {"start_date": us(today - timedelta(days=60)), "end_date": us(today)},
    ).json()["transactions"]
    assert len(history) >= 10
    assert all(t["status_message"] == "Settled" for t in history)


def test_export_by_date_range_refuses_a_bad_date(paytrace: PayTrace) -> None:
    response = paytrace.post(
        "/v1/transactions/export/by_date_range",
        {"start_date": "2024-01-01", "end_date": "01/31/2024"},
    )
    assert response.status_code == 400
    assert "96" in response.json()["errors"]


# -- customers ---------------------------------------------------------------------------------


def test_customer_create_update_export_delete(paytrace: PayTrace) -> None:
    created = paytrace.post(
        "/v1/customer/create",
        {
            "customer_id": "NEW-1",
            "credit_card": card(MASTERCARD),
            "billing_address": {"name": "Sam Quinn", "zip": "05401"},
            "email": "sam@example.org",
        },
    ).json()
    assert created["response_code"] == 160
    assert (
        created["status_message"]
        == "The customer profile for NEW-1/Sam Quinn was successfully created."
    )
    updated = paytrace.post(
        "/v1/customer/update", {"customer_id": "NEW-1", "email": "sam.q@example.org"}
    ).json()
    assert updated["response_code"] == 161
    exported = paytrace.post("/v1/customer/export", {"customer_id": "NEW-1"}).json()["customers"]
    assert exported[0]["email"] == "sam.q@example.org"
    assert exported[0]["credit_card"]["masked_number"] == "xxxxxxxxxxxx0057"
    deleted = paytrace.post("/v1/customer/delete", {"customer_id": "NEW-1"}).json()
    assert deleted["response_code"] == 162
    gone = paytrace.post("/v1/customer/export", {"customer_id": "NEW-1"})
    assert gone.status_code == 400
    assert "30" in gone.json()["errors"]


def test_creating_an_existing_customer_id_is_error_171(paytrace: PayTrace) -> None:
    response = paytrace.post(
        "/v1/customer/create", {"customer_id": "C00001", "credit_card": card()}
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"171": ["Please provide a unique customer ID."]}


def test_updating_an_unknown_customer_is_error_30(paytrace: PayTrace) -> None:
    response = paytrace.post("/v1/customer/update", {"customer_id": "GHOST", "email": "x@y.z"})
    assert "30" in response.json()["errors"]


def test_customer_from_transaction_keeps_the_card(paytrace: PayTrace) -> None:
    sale = paytrace.sale("8.00", number=MASTERCARD)["transaction_id"]
    created = paytrace.post(
        "/v1/customer/create_from_transaction", {"transaction_id": sale, "customer_id": "FROM-TX"}
    ).json()
    assert created["response_code"] == 160
    charged = paytrace.post(
        "/v1/transactions/sale/by_customer", {"customer_id": "FROM-TX", "amount": "2.00"}
    ).json()
    assert paytrace.export(charged["transaction_id"])["masked_card_number"] == "xxxxxxxxxxxx0057"


def test_seeded_profiles_follow_the_demo_population(paytrace: PayTrace) -> None:
    from ledgerlink.sandbox.people import population

    expected = sorted(p.customer_id for p in population(40) if p.has_card_profile)
    customers = paytrace.post("/v1/customer/export", {}).json()["customers"]
    assert sorted(c["customer_id"] for c in customers) == expected


# -- batches -----------------------------------------------------------------------------------


def test_settle_makes_a_batch_with_counts_and_net_amount(paytrace: PayTrace) -> None:
    old_sale = paytrace.sale("40.00")["transaction_id"]
    paytrace.settle()
    paytrace.sale("10.00")
    paytrace.sale("5.25")
    paytrace.post(
        "/v1/transactions/refund/for_transaction", {"transaction_id": old_sale, "amount": "3.00"}
    )
    voided = paytrace.sale("99.00")["transaction_id"]
    paytrace.post("/v1/transactions/void", {"transaction_id": voided})
    batch = paytrace.settle()["batch"]
    assert batch["sales_count"] == 2
    assert batch["refund_count"] == 1
    assert batch["transaction_count"] == 3
    assert batch["net_amount"] == 12.25
    one = paytrace.post("/v1/batches/export_one", {"batch_number": batch["batch_number"]}).json()
    assert one["batch"]["net_amount"] == 12.25
    listed = paytrace.post(
        "/v1/batches/transaction_list", {"batch_number": batch["batch_number"]}
    ).json()["transactions"]
    assert sorted(t["transaction_type"] for t in listed) == ["REFUND", "SALE", "SALE"]
    today = date.today()
    batches = paytrace.post(
        "/v1/batches/export", {"start_date": us(today - timedelta(days=60)), "end_date": us(today)}
    ).json()["batches"]
    assert batch["batch_number"] in [b["batch_number"] for b in batches]
    assert len(batches) >= 4  # three seeded history batches plus ours


def test_settle_with_nothing_pending_makes_no_batch(paytrace: PayTrace) -> None:
    assert paytrace.settle() == {"settled": False, "batch": None}


def test_unknown_batch_is_an_error(paytrace: PayTrace) -> None:
    response = paytrace.post("/v1/batches/export_one", {"batch_number": 1})
    assert response.status_code == 400


# -- disputes ----------------------------------------------------------------------------------


def test_dispute_report_lists_chargebacks_as_json_and_csv(paytrace: PayTrace) -> None:
    sale = paytrace.sale("60.00", invoice_id="INV-CB")["transaction_id"]
    refused = paytrace.http.post("/_sandbox/disputes", json={"transaction_id": sale})
    assert refused.status_code == 400  # not settled yet
    paytrace.settle()
    filed = paytrace.http.post(
        "/_sandbox/disputes",
        json={"transaction_id": sale, "amount": "25.00", "reason_code": "13.1"},
    )
    assert filed.status_code == 201
    report = paytrace.http.get("/_sandbox/disputes").json()["disputes"]
    assert report[0]["transaction_id"] == sale
    assert report[0]["dispute_amount"] == "25.00"
    assert report[0]["reason"] == "Merchandise/Services Not Received"
    assert report[0]["invoice_id"] == "INV-CB"
    text = paytrace.http.get("/_sandbox/disputes", params={"format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["case_number"] == report[0]["case_number"]
    assert rows[0]["masked_card_number"] == "xxxxxxxxxxxx5439"
