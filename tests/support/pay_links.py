"""Pay links in tests: make one through the API, read the payer's page, and turn a test card
into a hosted-fields token the way the payer's browser does (the page's client key, the
sandbox's tokenizer), so ledgerlink itself never receives the card."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ledgerlink.store.payment_models import PaymentEvent
from tests.support.payments import PaymentsWorld

VISA = "4012000098765439"
YEAR = str(date.today().year + 2)


@dataclass(frozen=True)
class Page:
    """The payer's page, as the form fields the browser would post."""

    status: int
    text: str
    csp: str
    client_key: str
    attempt: str
    csrftoken: str


def make_link(client: TestClient, token: str, invoice: str, **extra: Any) -> httpx.Response:
    return client.post(
        "/api/v1/payments/pay-links",
        json={"invoice_number": invoice, **extra},
        headers={"Authorization": f"Bearer {token}"},
    )


def open_page(client: TestClient, path: str) -> Page:
    response = client.get(path)
    text = response.text

    def found(pattern: str) -> str:
        match = re.search(pattern, text)
        return match.group(1) if match else ""

    return Page(
        status=response.status_code,
        text=text,
        csp=response.headers.get("content-security-policy", ""),
        client_key=found(r'data-client-key="([^"]+)"'),
        attempt=found(r'name="attempt" value="([^"]+)"'),
        csrftoken=found(r'name="csrftoken" value="([^"]+)"'),
    )


def hosted_token(world: PaymentsWorld, client_key: str, number: str = VISA) -> dict[str, str]:
    """What PayTrace's hosted fields give the page for ``number`` (posted to the sandbox)."""
    response = httpx.post(
        f"{world.paytrace_url}/protect/tokenize",
        json={
            "clientKey": client_key,
            "number": number,
            "expiration_month": "11",
            "expiration_year": YEAR,
            "csc": "999",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return {"hpf_token": body["hpf_token"], "enc_key": body["enc_key"]}


def submit(
    client: TestClient, path: str, page: Page, token: dict[str, str], **fields: str
) -> httpx.Response:
    return client.post(
        path,
        data={"csrftoken": page.csrftoken, "attempt": page.attempt, **token, **fields},
        follow_redirects=False,
    )


def sales_for(world: PaymentsWorld, invoice: str) -> list[dict[str, Any]]:
    """PayTrace's sales (any outcome) for ``invoice``."""
    today = date.today().strftime("%m/%d/%Y")
    body = world.paytrace(
        "/v1/transactions/export/by_date_range", {"start_date": today, "end_date": today}
    )
    return [
        t
        for t in body.get("transactions", [])
        if t.get("invoice_id") == invoice and t.get("transaction_type") == "SALE"
    ]


def event_count(world: PaymentsWorld) -> int:
    with world.runtime.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(PaymentEvent)) or 0)


def open_balance(world: PaymentsWorld, invoice: str) -> Decimal:
    """The invoice's open balance as the ledger has it (Sage 500 or SBC)."""
    if world.erp is not None:
        return Decimal(str(world.invoice(invoice)["Balance"]))
    return world.sbc_invoice(invoice).outstanding.to_decimal()
