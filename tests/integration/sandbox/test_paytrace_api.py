"""Contract tests of the PayTrace simulator: OAuth and transactions, over a real socket."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerlink.clock import Clock, ManualClock
from ledgerlink.sandbox.faults import FaultInjector
from ledgerlink.sandbox.paytrace import PayTraceConfig, create_app
from tests.support.asgi_server import serve_in_thread

VISA = "4012000098765439"
MASTERCARD = "5499740000000057"
DISCOVER = "6011000993026909"
AMEX = "371449635392376"
INTEGRATOR = "959195xEVBTk"
FUTURE_YEAR = str(date.today().year + 3)
_invoices = itertools.count(1)


def card(
    number: str = VISA, month: str = "12", year: str = str(date.today().year + 3)
) -> dict[str, str]:
    return {"number": number, "expiration_month": month, "expiration_year": year}


class PayTrace:
    """A thin client speaking to the simulator the way the connector will."""

    def __init__(self, base_url: str, config: PayTraceConfig) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.config = config
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            response = self.http.post(
                "/oauth/token",
                data={
                    "grant_type": "password",
                    "username": self.config.username,
                    "password": self.config.password,
                },
            )
            assert response.status_code == 200, response.text
            self._token = response.json()["access_token"]
        return self._token

    def post(self, path: str, body: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        payload = {"integrator_id": INTEGRATOR, **(body or {})}
        headers = {"Authorization": f"Bearer {self.token()}"}
        return self.http.post(path, json=payload, headers=headers, **kw)

    def sale(self, amount: str = "10.00", **extra: Any) -> dict[str, Any]:
        body = {
            "amount": amount,
            "credit_card": card(extra.pop("number", VISA)),
            "csc": "999",
            "invoice_id": f"INV-{next(_invoices)}",
            **extra,
        }
        response = self.post("/v1/transactions/sale/keyed", body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def settle(self) -> dict[str, Any]:
        return dict(self.http.post("/_sandbox/settle").json())

    def export(self, transaction_id: int) -> dict[str, Any]:
        response = self.post("/v1/transactions/export/by_id", {"transaction_id": transaction_id})
        assert response.status_code == 200, response.text
        return dict(response.json()["transactions"][0])


@contextmanager
def running(
    state_dir: Path,
    config: PayTraceConfig | None = None,
    faults: FaultInjector | None = None,
    clock: Clock | None = None,
) -> Iterator[PayTrace]:
    config = config or PayTraceConfig(seed_people=40)
    app = create_app(state_dir, config=config, faults=faults, time_source=clock)
    with serve_in_thread(app) as url:
        client = PayTrace(url, config)
        try:
            yield client
        finally:
            client.http.close()


@pytest.fixture
def paytrace(tmp_path: Path) -> Iterator[PayTrace]:
    with running(tmp_path) as client:
        yield client


# -- OAuth -------------------------------------------------------------------------------------


def test_password_grant_returns_a_bearer_token_with_lifetime(paytrace: PayTrace) -> None:
    response = paytrace.http.post(
        "/oauth/token",
        json={
            "grant_type": "password",
            "username": "ledgerlink-demo",
            "password": "ledgerlink-demo-pw",
        },
    )
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 7200
    assert abs(body["created_at"] - time.time()) < 5
    assert body["access_token"]


def test_wrong_password_is_an_invalid_grant(paytrace: PayTrace) -> None:
    response = paytrace.http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "ledgerlink-demo", "password": "nope"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert response.json()["error_description"]


def test_unknown_token_is_refused_with_401_invalid_token(paytrace: PayTrace) -> None:
    response = paytrace.http.post(
        "/v1/transactions/export/by_id",
        json={"integrator_id": INTEGRATOR, "transaction_id": 1},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_token_expires_after_its_lifetime(tmp_path: Path) -> None:
    config = PayTraceConfig(seed_people=4, token_lifetime_seconds=1)
    clock = ManualClock(datetime.now(UTC))
    with running(tmp_path, config, clock=clock) as paytrace:
        assert paytrace.post("/v1/customer/export", {"customer_id": "C00001"}).status_code == 200
        clock.advance(1.1)
        response = paytrace.post("/v1/customer/export", {"customer_id": "C00001"})
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "The access token expired",
    }


def test_calls_without_integrator_id_are_refused_naming_it(paytrace: PayTrace) -> None:
    response = paytrace.http.post(
        "/v1/transactions/sale/keyed",
        json={"amount": "5.00", "credit_card": card()},
        headers={"Authorization": f"Bearer {paytrace.token()}"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["response_code"] == 1
    assert "integrator_id" in str(body["errors"])


# -- sales -------------------------------------------------------------------------------------


def test_keyed_sale_is_approved_with_masked_card(paytrace: PayTrace) -> None:
    body = paytrace.sale("10.00", billing_address={"street_address": "1 Main", "zip": "97201"})
    assert body["success"] is True
    assert body["response_code"] == 101
    assert body["status_message"] == "Your transaction was successfully approved."
    assert body["masked_card_number"] == "xxxxxxxxxxxx5439"
    assert body["approval_code"].startswith("TAS")
    assert body["avs_response"] == "Full Exact Match"
    assert body["csc_response"] == "Match"
    assert isinstance(body["transaction_id"], int)
    assert body["external_transaction_id"] == ""


def test_decline_amount_is_not_approved_but_has_a_transaction_id(paytrace: PayTrace) -> None:
    """$0.29 is PayTrace's current sandbox decline trigger (answer recorded from the live
    sandbox by a public client's remote test)."""
    body = paytrace.sale("0.29")
    assert body["success"] is False
    assert body["response_code"] == 102
    assert body["status_message"] == "Your transaction was not approved."
    assert body["approval_code"] == ""
    assert body["approval_message"] == "  EXPIRED CARD - Expired card"
    assert body["transaction_id"]
    assert paytrace.export(body["transaction_id"])["status_message"] == "Declined"


def test_the_2017_trigger_amount_is_approved_as_today(paytrace: PayTrace) -> None:
    assert paytrace.sale("1.12")["response_code"] == 101
    assert paytrace.sale("112.00")["response_code"] == 101


def test_configured_decline_amount_declines(tmp_path: Path) -> None:
    with running(tmp_path, PayTraceConfig(seed_people=4, decline_amounts="7.77")) as paytrace:
        declined = paytrace.sale("7.77")
        assert declined["response_code"] == 102
        assert declined["approval_message"] == "    DECLINE - Do not honor"
        assert paytrace.sale("0.29")["response_code"] == 101


def test_avs_void_amount_is_approved_then_voided_103(paytrace: PayTrace) -> None:
    body = paytrace.sale("1.03")
    assert body["response_code"] == 103
    assert body["success"] is False
    assert paytrace.export(body["transaction_id"])["transaction_type"] == "VOID"


def test_invalid_card_number_and_expiry_are_reported_by_code(paytrace: PayTrace) -> None:
    response = paytrace.post(
        "/v1/transactions/sale/keyed",
        {"amount": "5.00", "credit_card": card("4012000098765430", month="13", year="1999")},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["status_message"] == "One or more errors has occurred."
    assert body["errors"]["35"] == ["Please provide a valid Credit Card Number."]
    assert set(body["errors"]) == {"35", "43", "44"}


def test_same_card_amount_and_invoice_twice_is_a_declined_duplicate(paytrace: PayTrace) -> None:
    """PayTrace's duplicate filter declines (981 is a permissions error, not a duplicate):
    nothing is charged and the attempt is kept as a declined transaction."""
    body = {"amount": "9.99", "credit_card": card(), "invoice_id": "DUP-1"}
    first = paytrace.post("/v1/transactions/sale/keyed", body).json()
    assert first["response_code"] == 101
    second = paytrace.post("/v1/transactions/sale/keyed", body)
    assert second.status_code == 200
    answer = second.json()
    assert answer["success"] is False
    assert answer["response_code"] == 102
    assert answer["status_message"] == "Your transaction was not approved."
    assert answer["approval_code"] == ""
    assert "Duplicate" in answer["approval_message"]
    assert "errors" not in answer
    assert answer["transaction_id"] != first["transaction_id"]
    assert paytrace.export(answer["transaction_id"])["status_code"] == "D"
    other_invoice = {**body, "invoice_id": "DUP-2"}
    assert paytrace.post("/v1/transactions/sale/keyed", other_invoice).json()["success"] is True


def test_duplicate_filter_ignores_declined_transactions(paytrace: PayTrace) -> None:
    body = {"amount": "0.29", "credit_card": card(), "invoice_id": "DUP-3"}
    assert paytrace.post("/v1/transactions/sale/keyed", body).json()["response_code"] == 102
    again = paytrace.post("/v1/transactions/sale/keyed", body).json()
    assert again["approval_message"] == "  EXPIRED CARD - Expired card"


def test_sale_by_customer_uses_the_stored_profile(paytrace: PayTrace) -> None:
    response = paytrace.post(
        "/v1/transactions/sale/by_customer", {"customer_id": "C00001", "amount": "25.00"}
    )
    body = response.json()
    assert body["response_code"] == 101
    exported = paytrace.export(body["transaction_id"])
    assert exported["customer_id"] == "C00001"
    assert exported["billing_address"]["name"]


def test_sale_by_unknown_customer_is_error_30(paytrace: PayTrace) -> None:
    response = paytrace.post(
        "/v1/transactions/sale/by_customer", {"customer_id": "NOPE", "amount": "25.00"}
    )
    assert response.status_code == 400
    assert "30" in response.json()["errors"]


def test_sale_by_transaction_charges_the_same_card_again(paytrace: PayTrace) -> None:
    first = paytrace.sale("3.00", number=MASTERCARD)
    again = paytrace.post(
        "/v1/transactions/sale/by_transaction",
        {"transaction_id": first["transaction_id"], "amount": "4.00"},
    ).json()
    assert again["response_code"] == 101
    assert "masked_card_number" not in again  # as recorded from PayTrace (Dec 2024)
    assert paytrace.export(again["transaction_id"])["masked_card_number"] == "xxxxxxxxxxxx0057"


def test_pt_protect_sale_resolves_a_hosted_fields_token_once(paytrace: PayTrace) -> None:
    minted = paytrace.http.post(
        "/_sandbox/hpf_token",
        json={
            "number": AMEX,
            "expiration_month": "01",
            "expiration_year": FUTURE_YEAR,
            "csc": "9997",
        },
    ).json()
    body = {"hpf_token": minted["hpf_token"], "enc_key": minted["enc_key"], "amount": "12.00"}
    sale = paytrace.post("/v1/transactions/sale/pt_protect", body).json()
    assert sale["response_code"] == 101
    assert sale["masked_card_number"] == "xxxxxxxxxxx2376"
    reused = paytrace.post("/v1/transactions/sale/pt_protect", body)
    assert reused.status_code == 400


def test_authorization_then_capture(paytrace: PayTrace) -> None:
    auth = paytrace.post(
        "/v1/transactions/authorization/keyed", {"amount": "50.00", "credit_card": card(DISCOVER)}
    ).json()
    assert auth["response_code"] == 101
    assert paytrace.export(auth["transaction_id"])["status_code"] == "A"
    captured = paytrace.post(
        "/v1/transactions/authorization/capture",
        {"transaction_id": auth["transaction_id"], "amount": "45.00"},
    ).json()
    assert captured["response_code"] == 112
    exported = paytrace.export(auth["transaction_id"])
    assert exported["status_code"] == "P"
    assert exported["amount"] == 45.0
    again = paytrace.post(
        "/v1/transactions/authorization/capture", {"transaction_id": auth["transaction_id"]}
    )
    assert "816" in again.json()["errors"]


# -- void and refund ---------------------------------------------------------------------------


def test_void_works_only_before_settlement(paytrace: PayTrace) -> None:
    pending = paytrace.sale("20.00")["transaction_id"]
    voided = paytrace.post("/v1/transactions/void", {"transaction_id": pending}).json()
    assert voided == {
        "success": True,
        "response_code": 109,
        "status_message": "Your transaction was successfully voided.",
        "transaction_id": pending,
    }
    settled = paytrace.sale("21.00")["transaction_id"]
    paytrace.settle()
    refused = paytrace.post("/v1/transactions/void", {"transaction_id": settled})
    assert refused.status_code == 400
    assert list(refused.json()["errors"]) == ["818"]


def test_refund_works_only_after_settlement(paytrace: PayTrace) -> None:
    sale = paytrace.sale("30.00")["transaction_id"]
    refused = paytrace.post("/v1/transactions/refund/for_transaction", {"transaction_id": sale})
    assert refused.status_code == 400
    assert list(refused.json()["errors"]) == ["817"]
    paytrace.settle()
    refund = paytrace.post(
        "/v1/transactions/refund/for_transaction", {"transaction_id": sale}
    ).json()
    assert refund["response_code"] == 106
    assert refund["transaction_id"] != sale
    assert paytrace.export(refund["transaction_id"])["original_transaction_id"] == sale


def test_partial_refunds_up_to_the_remaining_amount(paytrace: PayTrace) -> None:
    sale = paytrace.sale("30.00")["transaction_id"]
    paytrace.settle()
    path = "/v1/transactions/refund/for_transaction"
    assert paytrace.post(path, {"transaction_id": sale, "amount": "10.00"}).status_code == 200
    assert paytrace.post(path, {"transaction_id": sale, "amount": "15.50"}).status_code == 200
    over = paytrace.post(path, {"transaction_id": sale, "amount": "4.51"})
    assert over.status_code == 400
    assert "822" in over.json()["errors"]
    assert paytrace.post(path, {"transaction_id": sale, "amount": "4.50"}).status_code == 200


def test_unknown_transaction_is_error_811(paytrace: PayTrace) -> None:
    response = paytrace.post("/v1/transactions/void", {"transaction_id": 999})
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "811": ["The Transaction ID that you provided was not found."]
    }


def test_refund_to_customer_and_keyed(paytrace: PayTrace) -> None:
    to_customer = paytrace.post(
        "/v1/transactions/refund/to_customer", {"customer_id": "C00002", "amount": "5.00"}
    ).json()
    keyed = paytrace.post(
        "/v1/transactions/refund/keyed", {"amount": "6.00", "credit_card": card(MASTERCARD)}
    ).json()
    assert to_customer["response_code"] == keyed["response_code"] == 106
    assert paytrace.export(keyed["transaction_id"])["transaction_type"] == "REFUND"
