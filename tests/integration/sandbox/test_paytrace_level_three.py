"""Level 3 data on the PayTrace simulator: ``/v1/level_three/visa`` and ``/mastercard``
add line items to an approved, unsettled sale of that brand, as PayTrace answers."""

from __future__ import annotations

from typing import Any

from tests.integration.sandbox.test_paytrace_api import DISCOVER, MASTERCARD, PayTrace, paytrace

__all__ = ["paytrace"]  # the fixture, shared with the API contract tests

#: The line a public client's remote test sent to PayTrace's live sandbox (accepted, though
#: 4 x 424 is not 1999: the gateway does not check that lines add up).
PLUMBING = {
    "additional_tax_amount": 0,
    "additional_tax_rate": 8,
    "amount": 1999,
    "commodity_code": "123commodity",
    "description": "plumbing",
    "discount_amount": 327,
    "product_id": "skucode123",
    "quantity": 4,
    "unit_of_measure": "EACH",
    "unit_cost": 424,
}


def level_three(paytrace: PayTrace, brand: str, body: dict[str, Any]) -> Any:
    return paytrace.post(f"/v1/level_three/{brand}", body)


def test_visa_line_items_are_added_with_170(paytrace: PayTrace) -> None:
    sale = paytrace.sale("30.00")["transaction_id"]
    response = level_three(
        paytrace,
        "visa",
        {
            "transaction_id": sale,
            "invoice_id": "inv12345",
            "customer_reference_id": "123abcd",
            "tax_amount": 499,
            "source_address": {"zip": "94947"},
            "shipping_address": {"zip": "94948", "country": "US"},
            "line_items": [PLUMBING, {**PLUMBING, "product_id": "sku2"}],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "response_code": 170,
        "status_message": "Visa/MasterCard enhanced data was successfully added to "
        f"Transaction ID {sale}. 2 line item records were created.",
    }


def test_mastercard_data_goes_to_the_mastercard_endpoint_only(paytrace: PayTrace) -> None:
    sale = paytrace.sale("2.50", number=MASTERCARD)["transaction_id"]
    body = {"transaction_id": sale, "line_items": [{**PLUMBING, "debit_or_credit": "D"}]}
    assert level_three(paytrace, "mastercard", body).json()["response_code"] == 170
    wrong = level_three(paytrace, "visa", body)
    assert wrong.status_code == 400
    assert list(wrong.json()["errors"]) == ["881"]


def test_other_brands_and_settled_sales_take_no_level_three(paytrace: PayTrace) -> None:
    discover = paytrace.sale("3.00", number=DISCOVER)["transaction_id"]
    assert "881" in level_three(paytrace, "visa", {"transaction_id": discover}).json()["errors"]
    visa = paytrace.sale("4.00")["transaction_id"]
    paytrace.post("/v1/transactions/settle")
    assert "881" in level_three(paytrace, "visa", {"transaction_id": visa}).json()["errors"]


def test_malformed_line_items_are_refused_naming_each_field(paytrace: PayTrace) -> None:
    sale = paytrace.sale("5.00")["transaction_id"]
    response = level_three(
        paytrace,
        "visa",
        {
            "transaction_id": sale,
            "tax_amount": "lots",
            "line_items": [
                {**PLUMBING, "quantity": 0, "unit_cost": -1},
                {"description": "x" * 36, "debit_or_credit": "X", "tax_included": "yes"},
                "not an object",
            ],
        },
    )
    assert response.status_code == 400
    messages = response.json()["errors"]["880"]
    assert messages == [
        "Please provide a valid tax_amount.",
        "Please provide a valid line_items[0].unit_cost.",
        "Please provide a valid line_items[0].quantity.",
        "Please provide a valid line_items[1].description (at most 35 characters).",
        "Please provide a valid line_items[1].debit_or_credit (D or C).",
        "Please provide a valid line_items[1].tax_included (true or false).",
        "Please provide line_items[2] as an object.",
    ]


def test_level_three_without_transaction_id_is_error_58(paytrace: PayTrace) -> None:
    response = level_three(paytrace, "mastercard", {"line_items": [PLUMBING]})
    assert response.json()["errors"] == {"58": ["Please provide a valid Transaction ID."]}
