"""PayTrace Protect on the simulator: a client key, the hosted-fields script and page, the
card posted straight to the sandbox for a one-time token, and charging or storing by it."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from ledgerlink.sandbox.paytrace.store import FILE_NAME
from tests.e2e.conftest import CHROMIUM_ARGS, chromium_path
from tests.integration.sandbox.test_paytrace_api import MASTERCARD, VISA, PayTrace, paytrace
from tests.support.asgi_server import serve_in_thread

__all__ = ["paytrace"]  # the fixture, shared with the API contract tests

YEAR = str(date.today().year + 2)


def client_key(paytrace: PayTrace) -> str:
    response = paytrace.http.post(
        "/v1/payment_fields/token/create",
        headers={"Authorization": f"Bearer {paytrace.token()}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    return str(response.json()["clientKey"])


def tokenize(paytrace: PayTrace, key: str, number: str = VISA, **extra: Any) -> Any:
    body = {
        "clientKey": key,
        "number": number,
        "expiration_month": "11",
        "expiration_year": YEAR,
        "csc": "999",
        **extra,
    }
    return paytrace.http.post("/protect/tokenize", json=body)


def test_client_key_needs_the_api_token_and_no_body(paytrace: PayTrace) -> None:
    assert client_key(paytrace).startswith("ck_")
    refused = paytrace.http.post("/v1/payment_fields/token/create")
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"


def test_the_script_and_the_fields_page_are_served_by_the_sandbox(paytrace: PayTrace) -> None:
    script = paytrace.http.get("/js/protect.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert "window.PTPayment" in script.text
    page = paytrace.http.get("/protect/fields")
    assert page.status_code == 200
    assert 'autocomplete="cc-number"' in page.text
    assert "frame-ancestors *" in page.headers["content-security-policy"]


def test_a_token_from_the_hosted_fields_pays_a_sale_once(paytrace: PayTrace) -> None:
    minted = tokenize(paytrace, client_key(paytrace))
    assert minted.status_code == 200, minted.text
    token = minted.json()
    assert token["masked_card_number"] == "xxxxxxxxxxxx5439"
    body = {"hpf_token": token["hpf_token"], "enc_key": token["enc_key"], "amount": "12.00"}
    sale = paytrace.post("/v1/transactions/sale/pt_protect", body).json()
    assert sale["response_code"] == 101
    assert paytrace.export(sale["transaction_id"])["masked_card_number"] == "xxxxxxxxxxxx5439"
    again = paytrace.post("/v1/transactions/sale/pt_protect", body)
    assert again.status_code == 400
    assert "1032" in again.json()["errors"]


def test_a_token_creates_and_updates_a_customer_profile(paytrace: PayTrace) -> None:
    key = client_key(paytrace)
    first = tokenize(paytrace, key, MASTERCARD, csc="998").json()
    created = paytrace.post(
        "/v1/customer/pt_protect_create",
        {
            "customer_id": "HPF-1",
            "hpf_token": first["hpf_token"],
            "enc_key": first["enc_key"],
            "billing_address": {"name": "Ada Payer", "zip": "98101"},
            "email": "ada@example.com",
        },
    ).json()
    assert created["response_code"] == 160
    assert created["status_message"] == (
        "The customer profile for HPF-1/Ada Payer was successfully created."
    )
    second = tokenize(paytrace, key, VISA).json()
    updated = paytrace.post(
        "/v1/customer/pt_protect_update",
        {"customer_id": "HPF-1", "hpf_token": second["hpf_token"], "enc_key": second["enc_key"]},
    ).json()
    assert updated["response_code"] == 161
    profile = paytrace.post("/v1/customer/export", {"customer_id": "HPF-1"}).json()
    assert profile["customers"][0]["credit_card"]["masked_number"] == "xxxxxxxxxxxx5439"
    charged = paytrace.post(
        "/v1/transactions/sale/by_customer", {"customer_id": "HPF-1", "amount": "3.00"}
    )
    assert charged.json()["response_code"] == 101


def test_bad_cards_and_keys_are_refused_and_nothing_is_minted(paytrace: PayTrace) -> None:
    key = client_key(paytrace)
    bad_card = tokenize(paytrace, key, "4012000098765430")
    assert bad_card.status_code == 400
    assert "35" in bad_card.json()["errors"]
    bad_key = tokenize(paytrace, "ck_forged")
    assert bad_key.status_code == 401
    assert "1032" in bad_key.json()["errors"]
    duplicate = paytrace.post(
        "/v1/customer/pt_protect_create",
        {"customer_id": "C00001", "hpf_token": "x", "enc_key": "y"},
    )
    assert "171" in duplicate.json()["errors"]
    unknown = paytrace.post(
        "/v1/customer/pt_protect_update",
        {"customer_id": "NOPE", "hpf_token": "x", "enc_key": "y"},
    )
    assert "30" in unknown.json()["errors"]


def test_the_hosted_card_is_not_stored_in_full(paytrace: PayTrace, tmp_path: Path) -> None:
    tokenize(paytrace, client_key(paytrace), MASTERCARD, csc="998")
    stored = b"".join(p.read_bytes() for p in tmp_path.glob(f"{FILE_NAME}*"))
    assert MASTERCARD.encode() not in stored
    assert MASTERCARD not in paytrace.http.get("/_sandbox/state").text


MERCHANT_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Pay</title>
<script src="{sandbox}/js/protect.min.js"></script></head><body>
<div id="pt_hpf_form"></div><button id="pay" type="button">Pay</button><pre id="out"></pre>
<script>
PTPayment.setup({{authorization: {{clientKey: "{key}"}}}}).then(function () {{
  document.body.dataset.ready = "yes";
}});
document.getElementById("pay").addEventListener("click", function () {{
  PTPayment.validate(function (errors) {{
    var out = document.getElementById("out");
    if (errors.length) {{ out.textContent = JSON.stringify(errors); return; }}
    PTPayment.process().then(function (r) {{
      document.getElementById("out").textContent = JSON.stringify(r.message);
    }});
  }});
}});
</script></body></html>"""


def test_card_typed_into_the_hosted_fields_becomes_a_token_the_page_never_sees(
    paytrace: PayTrace,
) -> None:
    """In Chromium: a merchant page on another origin frames the sandbox's fields; what
    the page gets back is a token, and the sale by that token is approved."""
    page_html = MERCHANT_PAGE.format(sandbox=paytrace.base_url, key=client_key(paytrace))
    merchant = Starlette(routes=[Route("/", lambda request: HTMLResponse(page_html))])
    with serve_in_thread(merchant) as merchant_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(10_000)
            page.goto(merchant_url)
            page.wait_for_selector("body[data-ready=yes]")
            fields = page.frame_locator("#pt_hpf_frame")
            fields.locator("#number").fill("4012 0000 9876 5430")  # one digit wrong
            fields.locator("#month").fill("11")
            fields.locator("#year").fill(YEAR)
            fields.locator("#csc").fill("999")
            page.click("#pay")
            page.wait_for_function("document.getElementById('out').textContent !== ''")
            assert '"responseCode":"35"' in page.inner_text("#out")
            page.evaluate("document.getElementById('out').textContent = ''")
            fields.locator("#number").fill(VISA)
            page.click("#pay")
            page.wait_for_function("document.getElementById('out').textContent.includes('hpf_')")
            token = json.loads(page.inner_text("#out"))
            merchant_dom = page.content()
        finally:
            browser.close()
    assert VISA not in merchant_dom
    sale = paytrace.post(
        "/v1/transactions/sale/pt_protect",
        {"hpf_token": token["hpf_token"], "enc_key": token["enc_key"], "amount": "20.00"},
    ).json()
    assert sale["response_code"] == 101
    assert paytrace.export(sale["transaction_id"])["masked_card_number"] == "xxxxxxxxxxxx5439"
