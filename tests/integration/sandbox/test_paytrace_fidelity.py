"""The PayTrace simulator answers as PayTrace's sandbox does, where recorded traffic and
public client libraries show it: manual settlement, authorization by transaction, card
verification, unknown ids, and ``external_transaction_id`` on error bodies."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerlink.sandbox.paytrace import PayTraceConfig
from tests.integration.sandbox.test_paytrace_api import (
    MASTERCARD,
    PayTrace,
    card,
    paytrace,
    running,
)

__all__ = ["paytrace"]  # the fixture, shared with the API contract tests


def test_transactions_settle_settles_now_so_a_refund_works(paytrace: PayTrace) -> None:
    sale = paytrace.sale("20.00")["transaction_id"]
    refund = "/v1/transactions/refund/for_transaction"
    assert "817" in paytrace.post(refund, {"transaction_id": sale}).json()["errors"]

    settled = paytrace.post("/v1/transactions/settle")
    assert settled.status_code == 200
    assert settled.json()["success"] is True
    assert settled.json()["batch_number"]
    assert paytrace.export(sale)["status_code"] == "S"
    assert paytrace.post(refund, {"transaction_id": sale}).json()["response_code"] == 106


def test_transactions_settle_with_nothing_pending_still_succeeds(paytrace: PayTrace) -> None:
    paytrace.post("/v1/transactions/settle")
    again = paytrace.post("/v1/transactions/settle").json()
    assert again["success"] is True
    assert again["batch_number"] is None
    assert again["transaction_count"] == 0


def test_authorization_by_transaction_authorizes_the_same_card(paytrace: PayTrace) -> None:
    first = paytrace.sale("3.00", number=MASTERCARD)
    auth = paytrace.post(
        "/v1/transactions/authorization/by_transaction",
        {"transaction_id": first["transaction_id"], "amount": "7.00"},
    ).json()
    assert auth["success"] is True
    assert auth["response_code"] == 101
    assert "masked_card_number" not in auth
    exported = paytrace.export(auth["transaction_id"])
    assert exported["transaction_type"] == "AUTHORIZATION"
    assert exported["status_code"] == "A"
    assert exported["masked_card_number"] == "xxxxxxxxxxxx0057"
    captured = paytrace.post(
        "/v1/transactions/authorization/capture", {"transaction_id": auth["transaction_id"]}
    ).json()
    assert captured["response_code"] == 112


def test_zero_dollar_authorization_is_an_approved_card_verification(paytrace: PayTrace) -> None:
    verified = paytrace.post(
        "/v1/transactions/authorization/keyed",
        {"amount": "0.00", "credit_card": card(MASTERCARD), "csc": "998"},
    ).json()
    assert verified["success"] is True
    assert verified["response_code"] == 101
    assert verified["approval_code"]
    capture = paytrace.post(
        "/v1/transactions/authorization/capture", {"transaction_id": verified["transaction_id"]}
    )
    assert "816" in capture.json()["errors"]
    paytrace.post("/v1/transactions/settle")
    assert paytrace.export(verified["transaction_id"])["settled"] == ""


def test_zero_dollar_sale_is_refused_naming_the_amount(paytrace: PayTrace) -> None:
    refused = paytrace.post(
        "/v1/transactions/sale/keyed", {"amount": "0.00", "credit_card": card()}
    )
    assert refused.status_code == 400
    assert "50" in refused.json()["errors"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/transactions/void",
        "/v1/transactions/authorization/capture",
        "/v1/transactions/refund/for_transaction",
        "/v1/transactions/sale/by_transaction",
        "/v1/transactions/authorization/by_transaction",
        "/v1/transactions/export/by_id",
        "/v1/level_three/visa",
    ],
)
@pytest.mark.parametrize("transaction_id", [0, 999, "0"])
def test_unknown_transaction_id_including_zero_is_error_811(
    paytrace: PayTrace, path: str, transaction_id: object
) -> None:
    response = paytrace.post(path, {"transaction_id": transaction_id, "amount": "1.00"})
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "811": ["The Transaction ID that you provided was not found."]
    }


def test_missing_transaction_id_is_error_58(paytrace: PayTrace) -> None:
    for value in ("", None):
        body = {"transaction_id": value} if value is not None else {}
        response = paytrace.post("/v1/transactions/void", body)
        assert response.json()["errors"] == {"58": ["Please provide a valid Transaction ID."]}


def test_error_bodies_carry_the_external_transaction_id_sent(paytrace: PayTrace) -> None:
    for path in (
        "/v1/transactions/void",
        "/v1/transactions/authorization/capture",
        "/v1/transactions/refund/for_transaction",
    ):
        response = paytrace.post(path, {"transaction_id": 0, "external_transaction_id": "EXT-77"})
        assert response.status_code == 400
        assert response.json()["external_transaction_id"] == "EXT-77", path
    keyed = paytrace.post(
        "/v1/transactions/sale/keyed",
        {"amount": "1.00", "credit_card": card("1234"), "external_transaction_id": "EXT-78"},
    )
    assert keyed.json()["external_transaction_id"] == "EXT-78"


def test_capture_and_refund_errors_carry_an_empty_external_id_as_recorded(
    paytrace: PayTrace,
) -> None:
    capture = paytrace.post("/v1/transactions/authorization/capture", {"transaction_id": ""})
    assert capture.json() == {
        "success": False,
        "response_code": 1,
        "status_message": "One or more errors has occurred.",
        "errors": {"58": ["Please provide a valid Transaction ID."]},
        "external_transaction_id": "",
    }
    void = paytrace.post("/v1/transactions/void", {"transaction_id": ""})
    assert "external_transaction_id" not in void.json()


def test_approved_answers_echo_the_external_transaction_id(paytrace: PayTrace) -> None:
    body = paytrace.sale("2.50", external_transaction_id="EXT-9")
    assert body["external_transaction_id"] == "EXT-9"


def test_a_path_the_api_user_may_not_use_is_error_981(tmp_path: Path) -> None:
    config = PayTraceConfig(seed_people=4, denied_paths="/v1/transactions/refund/keyed")
    with running(tmp_path, config) as client:
        response = client.post(
            "/v1/transactions/refund/keyed", {"amount": "1.00", "credit_card": card()}
        )
        assert response.status_code == 400
        assert response.json()["errors"] == {"981": ["Log in failed for insufficient permissions."]}
        assert response.json()["external_transaction_id"] == ""
        assert client.sale("1.00")["response_code"] == 101
