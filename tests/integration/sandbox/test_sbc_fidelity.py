"""The SBC simulator where it used to differ from Sage (issue 20): contact references of at
most 10 characters, integer nominal codes, voiding answers the void record, the contact
types list, and the published schema check that keeps it that way."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledgerlink.sandbox.sbc import SbcConfig, conformance
from tests.support.asgi_server import serve_in_thread
from tests.support.postgres import _free_port
from tests.support.sbc import SbcClient, sbc_client
from tests.support.server import cli_env
from tests.support.waiting import wait_until

TOO_LONG = [
    {
        "$severity": "error",
        "$dataCode": "RecordInvalid",
        "$message": "is too long (maximum is 10 characters)",
        "$source": "reference",
    }
]


@pytest.fixture(scope="module")
def sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcClient]:
    with sbc_client(tmp_path_factory.mktemp("sbc")) as client:
        yield client


def _contact(sbc: SbcClient, name: str, **extra: object) -> dict[str, Any]:
    return sbc.created(
        "/contacts", "contact", {"name": name, "contact_type_ids": ["CUSTOMER"], **extra}
    )


def _invoice_body(sbc: SbcClient, contact: dict[str, Any]) -> dict[str, Any]:
    return {
        "contact_id": contact["id"],
        "date": f"{sbc.ok('/financial_settings')['year_end_date'][:4]}-03-01",
        "invoice_lines": [
            {
                "description": "Dues",
                "ledger_account_id": sbc.sales_account_id(),
                "quantity": "1",
                "unit_price": "40.00",
            }
        ],
    }


# -- Contact.reference: at most 10 characters ----------------------------------------------


def test_a_reference_longer_than_10_characters_is_refused_as_sbc_does(sbc: SbcClient) -> None:
    refused = sbc.post(
        "/contacts",
        "contact",
        {"name": "Long Reference", "contact_type_ids": ["CUSTOMER"], "reference": "M1234567890"},
    )
    assert refused.status_code == 422
    assert refused.json() == TOO_LONG
    assert sbc.ok("/contacts", search="Long Reference")["$total"] == 0  # nothing stored
    kept = _contact(sbc, "Ten Characters", reference="M123456789")
    assert kept["reference"] == "M123456789"
    changed = sbc.put(f"/contacts/{kept['id']}", "contact", {"reference": "M1234567890"})
    assert changed.status_code == 422
    assert changed.json() == TOO_LONG
    assert sbc.ok(f"/contacts/{kept['id']}")["reference"] == "M123456789"


def test_a_generated_reference_fits_in_10_characters(sbc: SbcClient) -> None:
    made = [_contact(sbc, "Bartholomew Featherstonehaugh") for _ in range(3)]
    assert [c["reference"] for c in made] == ["BARTHO001", "BARTHO002", "BARTHO003"]


# -- nominal codes ----------------------------------------------------------------------------


def test_nominal_codes_are_integers(sbc: SbcClient) -> None:
    accounts = sbc.ok("/ledger_accounts", attributes="all")["$items"]
    banks = sbc.ok("/bank_accounts", attributes="all")["$items"]
    codes = [a["nominal_code"] for a in accounts] + [b["nominal_code"] for b in banks]
    assert codes
    assert all(type(code) is int for code in codes), codes
    assert 4000 in codes


# -- voiding a sales invoice or credit note answers it, void ------------------------------------


def test_deleting_a_sales_invoice_answers_200_with_the_voided_invoice(sbc: SbcClient) -> None:
    contact = _contact(sbc, "Void Me")
    invoice = sbc.created("/sales_invoices", "sales_invoice", _invoice_body(sbc, contact))
    answer = sbc.delete(f"/sales_invoices/{invoice['id']}", void_reason="sent twice")
    assert answer.status_code == 200, answer.text
    voided = answer.json()
    assert (voided["id"], voided["status"]["id"], voided["void_reason"]) == (
        invoice["id"],
        "VOID",
        "sent twice",
    )
    assert voided["outstanding_amount"] == 0
    assert voided == sbc.ok(f"/sales_invoices/{invoice['id']}")


def test_deleting_a_sales_credit_note_answers_200_with_the_voided_note(sbc: SbcClient) -> None:
    contact = _contact(sbc, "Credit Me")
    body = _invoice_body(sbc, contact)
    body["credit_note_lines"] = body.pop("invoice_lines")
    note = sbc.created("/sales_credit_notes", "sales_credit_note", body)
    answer = sbc.delete(f"/sales_credit_notes/{note['id']}", void_reason="issued in error")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["id"], answer.json()["status"]["id"]) == (note["id"], "VOID")


# -- contact types --------------------------------------------------------------------------


def test_contact_types_are_listed_in_the_paging_envelope(sbc: SbcClient) -> None:
    listed = sbc.ok("/contact_types")
    assert set(listed) == {"$total", "$page", "$next", "$back", "$itemsPerPage", "$items"}
    assert listed["$total"] == 2
    assert listed["$items"] == [
        {"id": "CUSTOMER", "displayed_as": "Customer", "$path": "/contact_types/CUSTOMER"},
        {"id": "VENDOR", "displayed_as": "Supplier", "$path": "/contact_types/VENDOR"},
    ]
    first = sbc.ok("/contact_types", items_per_page=1)
    assert first["$next"] == "/contact_types?page=2&items_per_page=1"
    assert sbc.ok("/contact_types/VENDOR") == listed["$items"][1]
    assert sbc.get("/contact_types/NOBODY").status_code == 404


# -- the published schema check ---------------------------------------------------------------


def test_the_schema_check_names_the_path_the_operation_and_the_schema_error() -> None:
    schema = conformance.published_schema()
    contact = {"id": "c1", "displayed_as": "A", "$path": "/contacts/c1", "reference": "M00001"}
    body = json.dumps(contact).encode()
    assert schema.check("GET", "/contacts/c1", 200, body) is None
    long = json.dumps({**contact, "reference": "M1234567890"}).encode()
    found = schema.check("GET", "/contacts/c1", 200, long)
    assert found is not None
    assert (found.path, found.operation) == ("/contacts/c1", "GET /contacts/{key}")
    assert "reference" in found.error
    assert "longer than 10 characters" in found.error
    invented = json.dumps({**contact, "member_number": "M1"}).encode()
    assert "member_number" in str(schema.check("GET", "/contacts/c1", 200, invented))
    amount_as_text = json.dumps({**contact, "balance": "12.50"}).encode()
    assert "balance" in str(schema.check("GET", "/contacts/c1", 200, amount_as_text))
    empty = schema.check("DELETE", "/sales_invoices/i1", 204, b"")
    assert empty is not None
    assert "status 204 is not documented" in empty.error
    listed = json.dumps({"$total": 1, "$items": [contact]}).encode()
    assert "envelope" in str(schema.check("GET", "/contacts", 200, listed))
    error = json.dumps([{"$message": "no"}]).encode()
    assert "error array" in str(schema.check("GET", "/contacts/c1", 404, error))


def test_a_response_off_the_schema_is_reported_to_the_harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The middleware keeps the mismatch where the suite's harness looks (and would fail
    the test); here it is pointed at a report of this test's own."""
    report = tmp_path / "report.jsonl"
    monkeypatch.setenv(conformance.REPORT_ENV, str(report))

    async def contact(request: Any) -> Response:
        return JSONResponse({"id": "c1", "reference": "M1234567890", "nickname": "x"})

    app = conformance.SchemaCheckMiddleware(
        Starlette(routes=[Route("/v3.1/contacts/{key}", contact)])
    )
    with serve_in_thread(app) as base_url:
        assert httpx.get(f"{base_url}/v3.1/contacts/c1").status_code == 200
    [mismatch] = list(conformance.read_report(report))
    conformance.drain()
    assert (mismatch.method, mismatch.path, mismatch.operation, mismatch.status) == (
        "GET",
        "/contacts/c1",
        "GET /contacts/{key}",
        200,
    )
    assert "Contact at " in mismatch.error
    assert "GET /contacts/c1" in mismatch.describe()


@pytest.mark.slow
def test_a_sandbox_started_from_the_command_line_is_checked_too(tmp_path: Path) -> None:
    """The suite's check reaches ``ledgerlink sandbox serve sbc`` in a child process started
    the way the suite starts them (its ``LEDGERLINK_*`` settings replaced)."""
    assert conformance.enabled()  # the suite's harness turned it on
    env = cli_env({"LEDGERLINK_VAR_DIR": str(tmp_path / "var")})
    command = [sys.executable, "-m", "ledgerlink.cli", "sandbox", "serve", "sbc"]
    port = _free_port()  # not a fixed one: a soak or a demo may hold it
    command += ["--port", str(port), "--set", "auto_approve=true", "--set", "seed_people=0"]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: _answers(f"{base_url}/_sandbox/state"),
            timeout=30,
            what="the SBC sandbox started from the command line",
        )
        client = SbcClient(base_url, SbcConfig(auto_approve=True)).connect()
        try:
            client.ok("/contact_types")
            client.ok("/ledger_accounts", attributes="all")
        finally:
            client.close()
        check = httpx.get(f"{base_url}/_sandbox/state").json()["schema_check"]
        assert check["on"] is True
        assert check["checked"] >= 2
    finally:
        child.terminate()
        child.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
