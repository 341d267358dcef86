"""The PayTrace simulator's checks (ACH) API, as PayTrace answers it, and the bank's
returns (R01, R02, …) played through the sandbox, over a real socket."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledgerlink.sandbox.paytrace import PayTraceConfig
from ledgerlink.sandbox.paytrace.store import FILE_NAME
from tests.integration.sandbox.test_paytrace_api import PayTrace, paytrace, running

__all__ = ["paytrace"]  # the fixture, shared with the API contract tests

ROUTING = "325070760"  # the routing number PayTrace's sandbox accepts in public client tests
ACCOUNT = "123456"


def check(account: str = ACCOUNT, routing: str = ROUTING) -> dict[str, str]:
    return {"account_number": account, "routing_number": routing}


def sale(paytrace: PayTrace, amount: str = "100.00", **extra: Any) -> dict[str, Any]:
    body = {"amount": amount, "check": check(), "billing_address": {"name": "Ada Payer"}}
    response = paytrace.post("/v1/checks/sale/by_account", {**body, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


def export(paytrace: PayTrace, check_id: int) -> dict[str, Any]:
    response = paytrace.post("/v1/checks/export/by_id", {"check_transaction_id": check_id})
    assert response.status_code == 200, response.text
    return dict(response.json()["checks"][0])


def test_check_sale_by_account_is_processed_as_paytrace_answers(paytrace: PayTrace) -> None:
    body = sale(paytrace, invoice_id="INV-ACH-1")
    assert body["success"] is True
    assert body["response_code"] == 120
    assert body["status_message"] == "Your check was successfully processed."
    assert isinstance(body["check_transaction_id"], int)
    shown = export(paytrace, body["check_transaction_id"])
    assert shown["transaction_type"] == "SALE"
    assert shown["status_code"] == "P"
    assert shown["masked_account_number"] == "xx3456"
    assert shown["invoice_id"] == "INV-ACH-1"


def test_bad_account_and_routing_numbers_are_errors_45_and_46(paytrace: PayTrace) -> None:
    response = paytrace.post(
        "/v1/checks/sale/by_account",
        {"amount": "5.00", "check": check(account="12", routing="325070761")},
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "45": ["Please provide a valid Checking Account Number."],
        "46": ["Please provide a valid Transit Routing Number."],
    }


def test_decline_amount_is_not_processed_125(paytrace: PayTrace) -> None:
    body = sale(paytrace, "0.29")
    assert body["success"] is False
    assert body["response_code"] == 125
    assert body["status_message"] == "Your check was NOT successfully processed."
    assert body["ach_code"] == 0
    assert export(paytrace, body["check_transaction_id"])["status_code"] == "D"


def test_customer_profile_holds_a_bank_account_and_is_charged_by_check(
    paytrace: PayTrace,
) -> None:
    created = paytrace.post(
        "/v1/customer/create",
        {"customer_id": "ACH-1", "check": check(), "billing_address": {"name": "Ada Payer"}},
    ).json()
    assert created["response_code"] == 160
    profile = paytrace.post("/v1/customer/export", {"customer_id": "ACH-1"}).json()
    assert profile["customers"][0]["check"] == {
        "masked_account_number": "xx3456",
        "routing_number": ROUTING,
    }
    assert "credit_card" not in profile["customers"][0]
    charged = paytrace.post(
        "/v1/checks/sale/by_customer", {"customer_id": "ACH-1", "amount": "40.00"}
    ).json()
    assert charged["response_code"] == 120
    assert export(paytrace, charged["check_transaction_id"])["customer_id"] == "ACH-1"
    card_sale = paytrace.post(
        "/v1/transactions/sale/by_customer", {"customer_id": "ACH-1", "amount": "1.00"}
    )
    assert card_sale.json()["errors"] == {
        "30": ["Customer ID, ACH-1, was not found or is incomplete."]
    }


def test_check_sale_by_card_only_customer_is_error_30(paytrace: PayTrace) -> None:
    response = paytrace.post(
        "/v1/checks/sale/by_customer", {"customer_id": "C00001", "amount": "1.00"}
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "30": ["Customer ID, C00001, was not found or is incomplete."]
    }


def test_hold_then_fund_for_less_then_settle(paytrace: PayTrace) -> None:
    held = paytrace.post("/v1/checks/hold/by_account", {"amount": "50.00", "check": check()}).json()
    assert held["response_code"] == 120
    check_id = held["check_transaction_id"]
    assert export(paytrace, check_id)["status_code"] == "H"
    paytrace.post("/v1/transactions/settle")
    assert export(paytrace, check_id)["status_code"] == "H"  # a hold waits for funding

    funded = paytrace.post(
        "/v1/checks/manage/fund", {"check_transaction_id": check_id, "amount": "45.00"}
    ).json()
    assert funded == {
        "success": True,
        "response_code": 124,
        "status_message": "Your check was successfully managed.",
        "check_transaction_id": check_id,
    }
    paytrace.post("/v1/transactions/settle")
    shown = export(paytrace, check_id)
    assert shown["status_code"] == "S"
    assert shown["amount"] == 45.0


def test_void_before_settlement_only(paytrace: PayTrace) -> None:
    check_id = sale(paytrace)["check_transaction_id"]
    voided = paytrace.post("/v1/checks/manage/void", {"check_transaction_id": check_id})
    assert voided.json()["response_code"] == 124
    assert export(paytrace, check_id)["status_code"] == "V"
    again = paytrace.post("/v1/checks/manage/void", {"check_transaction_id": check_id})
    assert again.status_code == 400
    assert again.json()["errors"] == {
        "80": [
            "The Check ID that you have provided was not found in the PayTrace records. "
            "It may already be voided or settled."
        ]
    }


def test_refund_by_transaction_after_settlement_up_to_what_remains(paytrace: PayTrace) -> None:
    check_id = sale(paytrace, "80.00")["check_transaction_id"]
    path = "/v1/checks/refund/by_transaction"
    early = paytrace.post(path, {"check_transaction_id": check_id})
    assert early.status_code == 400
    assert "80" in early.json()["errors"]
    paytrace.post("/v1/transactions/settle")

    refunded = paytrace.post(path, {"check_transaction_id": check_id, "amount": "30.00"}).json()
    assert refunded["response_code"] == 122
    assert refunded["status_message"] == "Your check was successfully refunded."
    refund = export(paytrace, refunded["check_transaction_id"])
    assert refund["transaction_type"] == "REFUND"
    assert refund["original_check_transaction_id"] == check_id
    over = paytrace.post(path, {"check_transaction_id": check_id, "amount": "60.00"})
    assert "822" in over.json()["errors"]


@pytest.mark.parametrize(
    "path", ["/v1/checks/manage/fund", "/v1/checks/manage/void", "/v1/checks/refund/by_transaction"]
)
def test_unknown_check_id_is_error_80(paytrace: PayTrace, path: str) -> None:
    response = paytrace.post(path, {"check_transaction_id": 0})
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["80"]


def test_returned_check_shows_its_r_code_in_the_checks_export(paytrace: PayTrace) -> None:
    check_id = sale(paytrace, "120.00", invoice_id="INV-R01")["check_transaction_id"]
    paytrace.post("/v1/transactions/settle")

    returned = paytrace.http.post(
        "/_sandbox/checks/return", json={"check_transaction_id": check_id, "return_code": "r01"}
    )
    assert returned.status_code == 200, returned.text
    shown = export(paytrace, check_id)
    assert shown["status_code"] == "R"
    assert shown["status_message"] == "Returned"
    assert shown["return_code"] == "R01"
    assert shown["return_reason"] == "Insufficient Funds"
    assert shown["returned"]
    today = date.today().strftime("%m/%d/%Y")
    by_date = paytrace.post(
        "/v1/checks/export/by_date_range", {"start_date": today, "end_date": today}
    ).json()
    assert [
        c["return_code"] for c in by_date["checks"] if c["check_transaction_id"] == check_id
    ] == ["R01"]


def test_a_check_is_returned_once_and_only_with_a_known_code(paytrace: PayTrace) -> None:
    check_id = sale(paytrace)["check_transaction_id"]
    unknown = paytrace.http.post(
        "/_sandbox/checks/return", json={"check_transaction_id": check_id, "return_code": "R99"}
    )
    assert unknown.status_code == 400
    assert "return_code" in unknown.json()["errors"]
    first = paytrace.http.post(
        "/_sandbox/checks/return", json={"check_transaction_id": check_id, "return_code": "R02"}
    )
    assert first.status_code == 200
    second = paytrace.http.post(
        "/_sandbox/checks/return", json={"check_transaction_id": check_id, "return_code": "R02"}
    )
    assert second.status_code == 400
    codes = paytrace.http.get("/_sandbox/checks/return").json()["return_codes"]
    assert codes["R02"] == "Account Closed"
    state = paytrace.http.get("/_sandbox/state").json()
    assert state["checks"] == {"SALE": {"Returned": 1}}


def test_no_full_account_number_is_stored(paytrace: PayTrace, tmp_path: Path) -> None:
    secret = "987654321012"
    paytrace.post("/v1/checks/sale/by_account", {"amount": "9.00", "check": check(secret)})
    paytrace.post("/v1/customer/create", {"customer_id": "ACH-S", "check": check(secret)})
    stored = b"".join(p.read_bytes() for p in tmp_path.glob(f"{FILE_NAME}*"))
    assert secret.encode() not in stored
    exported = paytrace.post("/v1/customer/export", {"customer_id": "ACH-S"}).json()
    assert secret not in json.dumps(exported)


def test_state_kept_by_an_older_simulator_gains_bank_account_columns(tmp_path: Path) -> None:
    """A sandbox state written before checks existed still starts, and its profiles can
    then hold a bank account (the state survives upgrades as it survives restarts)."""
    old = sqlite3.connect(tmp_path / FILE_NAME)
    old.execute(
        "CREATE TABLE customers (customer_id TEXT PRIMARY KEY, masked TEXT NOT NULL,"
        " card_type TEXT NOT NULL, exp_month INTEGER NOT NULL, exp_year INTEGER NOT NULL,"
        " billing TEXT NOT NULL, email TEXT NOT NULL DEFAULT '', phone TEXT NOT NULL DEFAULT '',"
        " created_at REAL NOT NULL, updated_at REAL NOT NULL)"
    )
    old.commit()
    old.close()
    with running(tmp_path, PayTraceConfig(seed_people=0)) as client:
        created = client.post("/v1/customer/create", {"customer_id": "OLD-1", "check": check()})
        assert created.json()["response_code"] == 160
        charged = client.post(
            "/v1/checks/sale/by_customer", {"customer_id": "OLD-1", "amount": "5.00"}
        )
        assert charged.json()["response_code"] == 120
