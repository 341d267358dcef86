"""Contract tests of the SBC simulator's REST surface: the facts of ../shared/api-notes/sbc.md."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerlink.sandbox.faults import FaultInjector, FaultPlan
from ledgerlink.sandbox.sbc import LEAD_BUSINESS_ID, SECOND_BUSINESS_ID, SbcConfig
from tests.support.sbc import SbcClient, sbc_client

#: Properties of the v3.1 Contact schema (developer.sage.com reference) the simulator may show.
CONTACT_SCHEMA = {
    "id",
    "displayed_as",
    "$path",
    "created_at",
    "updated_at",
    "contact_types",
    "name",
    "reference",
    "email",
    "notes",
    "currency",
    "credit_limit",
    "balance",
    "main_address",
    "main_contact_person",
    "deleted_at",
}


@pytest.fixture(scope="module")
def sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcClient]:
    with sbc_client(tmp_path_factory.mktemp("sbc")) as client:
        yield client


def _contact(sbc: SbcClient, name: str, **extra: object) -> dict[str, Any]:
    return sbc.created(
        "/contacts", "contact", {"name": name, "contact_type_ids": ["CUSTOMER"], **extra}
    )


# -- businesses and settings ---------------------------------------------------------------


def test_businesses_lists_at_least_two_with_32_hex_ids(sbc: SbcClient) -> None:
    items = sbc.ok("/businesses", attributes="all")["$items"]
    assert len(items) >= 2
    for business in items:
        assert len(business["id"]) == 32
        assert int(business["id"], 16) >= 0
        assert business["name"]
        assert "is_demo" in business


def test_x_business_scopes_every_read_and_write(sbc: SbcClient) -> None:
    sbc.business = SECOND_BUSINESS_ID
    try:
        contact = _contact(sbc, "Only In The Foundation")
        assert sbc.get(f"/contacts/{contact['id']}").status_code == 200
    finally:
        sbc.business = None
    assert sbc.get(f"/contacts/{contact['id']}").status_code == 404
    sbc.business = LEAD_BUSINESS_ID
    try:
        assert sbc.get(f"/contacts/{contact['id']}").status_code == 404
    finally:
        sbc.business = None


def test_an_unknown_business_is_refused(sbc: SbcClient) -> None:
    sbc.business = "f" * 32
    try:
        response = sbc.get("/contacts")
    finally:
        sbc.business = None
    assert response.status_code == 403
    assert response.json()[0]["$source"] == "X-Business"


def test_financial_settings_has_the_documented_fields(sbc: SbcClient) -> None:
    settings = sbc.ok("/financial_settings")
    for field in (
        "year_end_date",
        "year_end_lockdown_date",
        "accounts_start_date",
        "base_currency",
        "multi_currency_enabled",
        "accounting_type",
    ):
        assert field in settings
    assert settings["base_currency"]["id"] == "USD"
    assert settings["year_end_lockdown_date"] < settings["year_end_date"]


def test_reference_lists_are_there(sbc: SbcClient) -> None:
    methods = {m["id"] for m in sbc.all_items("/payment_methods")}
    assert {"CREDIT_DEBIT", "BANK_TRANSFER", "CASH", "CHECK"} <= methods
    assert {c["id"] for c in sbc.all_items("/currencies")} >= {"USD"}
    accounts = sbc.all_items("/ledger_accounts", attributes="all")
    assert all(a["ledger_account_type"]["id"] and a["nominal_code"] for a in accounts)
    assert sbc.all_items("/bank_accounts")
    assert sbc.all_items("/tax_rates")


# -- collections ----------------------------------------------------------------------------


def test_the_paging_envelope(sbc: SbcClient) -> None:
    body = sbc.ok("/contacts")
    assert body["$page"] == 1
    assert body["$itemsPerPage"] == 20
    assert body["$back"] is None
    assert len(body["$items"]) == 20
    assert body["$next"].startswith("/contacts?")
    assert "page=2" in body["$next"]
    second = sbc.http.get(f"/v3.1{body['$next']}", headers=sbc.headers()).json()
    assert second["$page"] == 2
    assert second["$back"].startswith("/contacts?")


def test_items_per_page_is_capped_at_200(sbc: SbcClient) -> None:
    body = sbc.ok("/sales_invoices", items_per_page=500)
    assert body["$itemsPerPage"] == 200
    assert len(body["$items"]) == 200


def test_following_next_reads_every_record_once(sbc: SbcClient) -> None:
    total = sbc.ok("/sales_invoices")["$total"]
    items = sbc.all_items("/sales_invoices", items_per_page=37)
    assert len(items) == total == len({i["id"] for i in items})


def test_list_items_are_brief_unless_attributes_are_asked_for(sbc: SbcClient) -> None:
    brief = sbc.ok("/contacts", items_per_page=1)["$items"][0]
    assert set(brief) == {"id", "displayed_as", "$path"}
    chosen = sbc.ok("/contacts", items_per_page=1, attributes="name,email")["$items"][0]
    assert set(chosen) == {"id", "displayed_as", "$path", "name", "email"}
    full = sbc.ok("/contacts", items_per_page=1, attributes="all")["$items"][0]
    assert "main_address" in full
    assert "balance" in full
    assert set(full) <= CONTACT_SCHEMA


def test_linked_records_are_embedded_as_id_displayed_as_path(sbc: SbcClient) -> None:
    invoice = sbc.first("sales_invoices")
    for field in ("contact", "currency", "status"):
        assert set(invoice[field]) == {"id", "displayed_as", "$path"}
    contact = sbc.ok(invoice["contact"]["$path"])
    assert contact["contact_types"] == [
        {"id": "CUSTOMER", "displayed_as": "Customer", "$path": "/contact_types/CUSTOMER"}
    ]


def test_amounts_are_json_numbers_read_exactly(sbc: SbcClient) -> None:
    """The published schema types every amount ``number``: a client reading the JSON with
    Decimal gets the two-decimal amount exactly."""
    response = sbc.get("/sales_invoices", attributes="all")
    invoice = json.loads(response.content, parse_float=Decimal)["$items"][0]
    for field in ("total_amount", "outstanding_amount", "total_paid", "net_amount"):
        assert isinstance(invoice[field], Decimal | int), invoice[field]
        assert invoice[field] == invoice[field].quantize(Decimal("0.01"))


def test_updated_or_created_since_is_inclusive_and_deleted_since_shows_deletions(
    sbc: SbcClient,
) -> None:
    time.sleep(0.01)
    before = datetime.now(UTC)
    contact = _contact(sbc, "Fresh Contact")
    changed = sbc.all_items("/contacts", updated_or_created_since=contact["created_at"])
    assert contact["id"] in {c["id"] for c in changed}
    old = sbc.all_items("/contacts", updated_or_created_since=before.isoformat())
    assert len(old) < sbc.ok("/contacts")["$total"]
    assert sbc.delete(f"/contacts/{contact['id']}").status_code == 204
    assert sbc.get(f"/contacts/{contact['id']}").status_code == 404
    gone = sbc.all_items("/contacts", deleted_since=before.isoformat())
    assert [c["id"] for c in gone] == [contact["id"]]
    assert contact["id"] not in {
        c["id"] for c in sbc.all_items("/contacts", updated_or_created_since=before.isoformat())
    }


def test_search_email_and_type_filters(sbc: SbcClient) -> None:
    found = sbc.ok("/contacts", search="m00001", attributes="all")["$items"]
    assert [c["reference"] for c in found] == ["M00001"]
    email = found[0]["email"]
    assert [c["id"] for c in sbc.ok("/contacts", email=email)["$items"]] == [found[0]["id"]]
    vendor = sbc.created(
        "/contacts", "contact", {"name": "Paper Supplier", "contact_type_ids": ["VENDOR"]}
    )
    customers = {c["id"] for c in sbc.all_items("/contacts", contact_type_id="CUSTOMER")}
    assert vendor["id"] not in customers


def test_invoice_filters_by_contact_status_and_dates(sbc: SbcClient) -> None:
    invoice = sbc.first("sales_invoices", status_id="PART_PAID")
    mine = sbc.all_items("/sales_invoices", contact_id=invoice["contact"]["id"], attributes="all")
    assert invoice["id"] in {i["id"] for i in mine}
    assert all(i["contact"]["id"] == invoice["contact"]["id"] for i in mine)
    part_paid = sbc.all_items("/sales_invoices", status_id="PART_PAID", attributes="all")
    assert part_paid
    assert all(i["status"]["id"] == "PART_PAID" for i in part_paid)
    day = invoice["date"]
    same_day = sbc.all_items("/sales_invoices", from_date=day, to_date=day, attributes="all")
    assert same_day
    assert all(i["date"] == day for i in same_day)


def test_sort_created_at_desc_reverses_the_order(sbc: SbcClient) -> None:
    ascending = [c["id"] for c in sbc.all_items("/contacts", sort="created_at:asc")]
    descending = [c["id"] for c in sbc.all_items("/contacts", sort="created_at:desc")]
    assert ascending[0] == descending[-1]
    assert ascending[-1] == descending[0]


# -- writes -----------------------------------------------------------------------------------


def test_create_wraps_the_resource_and_answers_201_with_the_full_record(sbc: SbcClient) -> None:
    created = _contact(
        sbc,
        "Wrapped Writer",
        reference="WRAP-1",
        email="w@example.org",
        main_address={"address_line_1": "1 Main St", "city": "Austin", "country_id": "US"},
    )
    assert created["reference"] == "WRAP-1"
    assert created["balance"] == 0
    assert created["main_address"]["country"]["id"] == "US"
    updated = sbc.put(f"/contacts/{created['id']}", "contact", {"email": "new@example.org"})
    assert updated.status_code == 200
    assert updated.json()["email"] == "new@example.org"
    assert updated.json()["name"] == "Wrapped Writer"


def test_an_unwrapped_body_names_the_wrapper(sbc: SbcClient) -> None:
    response = sbc.http.post("/v3.1/contacts", json={"name": "x"}, headers=sbc.headers())
    assert response.status_code == 422
    assert response.json()[0]["$source"] == "contact"


def test_json_only(sbc: SbcClient) -> None:
    response = sbc.http.post(
        "/v3.1/contacts",
        content=b"name=x",
        headers={**sbc.headers(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert response.json()[0]["$severity"] == "error"


def test_validation_errors_are_arrays_naming_the_field(sbc: SbcClient) -> None:
    response = sbc.post("/contacts", "contact", {"name": "", "contact_type_ids": ["CUSTOMER"]})
    assert response.status_code == 422
    assert response.json() == [
        {
            "$severity": "error",
            "$dataCode": "RecordInvalid",
            "$message": "can't be blank",
            "$source": "name",
        }
    ]


@pytest.mark.parametrize(
    ("path", "resource", "required"),
    [
        ("/contacts", "contact", {"name", "contact_type_ids"}),
        ("/sales_invoices", "sales_invoice", {"contact_id", "date", "invoice_lines"}),
        (
            "/contact_payments",
            "contact_payment",
            {"transaction_type_id", "contact_id", "bank_account_id", "date", "total_amount"},
        ),
    ],
)
def test_required_fields_on_create(
    sbc: SbcClient, path: str, resource: str, required: set[str]
) -> None:
    full = _complete_body(sbc, resource)
    assert sbc.post(path, resource, full).status_code == 201
    for field in required:
        body = {k: v for k, v in _complete_body(sbc, resource).items() if k != field}
        response = sbc.post(path, resource, body)
        assert response.status_code == 422, field
        assert {p["$source"] for p in response.json()} == {field}


def _complete_body(sbc: SbcClient, resource: str) -> dict[str, object]:
    contact = sbc.first("contacts", contact_type_id="CUSTOMER")
    today = datetime.now(UTC).date().isoformat()
    match resource:
        case "contact":
            return {"name": f"Complete {time.monotonic_ns()}", "contact_type_ids": ["CUSTOMER"]}
        case "sales_invoice":
            return {
                "contact_id": contact["id"],
                "date": today,
                "invoice_lines": [
                    {
                        "description": "Dues",
                        "ledger_account_id": sbc.sales_account_id(),
                        "quantity": 1,
                        "unit_price": "10.00",
                    }
                ],
            }
        case _:
            return {
                "transaction_type_id": "CUSTOMER_RECEIPT",
                "contact_id": contact["id"],
                "bank_account_id": sbc.first("bank_accounts")["id"],
                "date": today,
                "total_amount": "1.00",
            }


def test_a_repeated_idempotency_id_returns_the_original_record(sbc: SbcClient) -> None:
    key = "0123456789abcdef0123456789abcdef"
    body = {"name": "Idempotent Ida", "contact_type_ids": ["CUSTOMER"], "idempotency_id": key}
    first = sbc.post("/contacts", "contact", body)
    again = sbc.post("/contacts", "contact", {**body, "name": "Changed Mind"})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["name"] == "Idempotent Ida"
    assert len(sbc.ok("/contacts", search="Idempotent Ida")["$items"]) == 1


def test_an_idempotency_id_must_be_a_guid(sbc: SbcClient) -> None:
    response = sbc.post(
        "/contacts",
        "contact",
        {"name": "X", "contact_type_ids": ["CUSTOMER"], "idempotency_id": "abc"},
    )
    assert response.status_code == 422
    assert response.json()[0]["$source"] == "idempotency_id"


def test_contact_references_are_unique(sbc: SbcClient) -> None:
    response = sbc.post(
        "/contacts",
        "contact",
        {"name": "Copy", "contact_type_ids": ["CUSTOMER"], "reference": "M00001"},
    )
    assert response.status_code == 422
    assert response.json()[0] == {
        "$severity": "error",
        "$dataCode": "RecordInvalid",
        "$message": "has already been taken",
        "$source": "reference",
    }


def test_not_found_and_method_not_allowed(sbc: SbcClient) -> None:
    missing = sbc.get("/contacts/" + "0" * 32)
    assert missing.status_code == 404
    assert missing.json()[0]["$dataCode"] == "RecordNotFound"
    wrong = sbc.http.put(
        "/v3.1/payment_methods/CASH", json={"payment_method": {}}, headers=sbc.headers()
    )
    assert wrong.status_code == 405
    assert wrong.json()[0]["$severity"] == "error"
    nowhere = sbc.get("/no_such_things")
    assert nowhere.status_code == 404
    assert isinstance(nowhere.json(), list)


def test_no_token_is_401(sbc: SbcClient) -> None:
    response = httpx.get(f"{sbc.base_url}/v3.1/contacts")
    assert response.status_code == 401
    assert response.json()[0]["$dataCode"] == "AuthorizationFailure"


# -- limits and faults ----------------------------------------------------------------------


def test_the_rate_limit_answers_429_per_business(tmp_path: Path) -> None:
    config = SbcConfig(auto_approve=True, rate_limit_per_minute=5)
    with sbc_client(tmp_path, config) as client:
        statuses = [client.get("/contacts").status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        limited = client.get("/contacts")
        assert limited.json()[0]["$dataCode"] == "TooManyRequests"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        client.business = SECOND_BUSINESS_ID  # another business has its own allowance
        assert client.get("/contacts").status_code == 200


def test_the_rate_limit_can_leave_out_retry_after(tmp_path: Path) -> None:
    config = SbcConfig(auto_approve=True, rate_limit_per_minute=1, rate_limit_retry_after=False)
    with sbc_client(tmp_path, config) as client:
        client.get("/contacts")
        limited = client.get("/contacts")
        assert limited.status_code == 429
        assert "Retry-After" not in limited.headers


def test_injected_faults_answer_in_sbc_shape_and_spare_the_consent_page(tmp_path: Path) -> None:
    injector = FaultInjector()
    with sbc_client(tmp_path, faults=injector) as client:
        injector.replace(
            FaultPlan(error_rate=1.0, error_status=503, exempt_paths=injector.plan.exempt_paths)
        )
        failed = client.get("/contacts")
        assert failed.status_code == 503
        assert failed.json()[0]["$severity"] == "error"
        assert client.authorize().status_code == 302  # auto-approve still works
        injector.replace(FaultPlan(expired_token_rate=1.0))
        expired = client.get("/contacts")
        assert expired.status_code == 401
        assert expired.json()[0]["$dataCode"] == "AuthorizationFailure"
