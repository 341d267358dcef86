"""Previews of the payment specs over real records: PayTrace's amounts reach the spec as
posting hands them (exact decimal text), the newest payments in the inbox are what the
portal and the API preview over, and no card data is shown."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from ledgerlink.identity.roles import Role
from ledgerlink.sandbox.paytrace import PayTraceConfig, create_app
from ledgerlink.settings import Settings
from tests.support.asgi_server import serve_in_thread
from tests.support.payments import PaymentsWorld, profiles, sage500_world
from tests.support.web import make_user, sign_in

SPEC = "paytrace_transaction_to_sage500_cash_receipt"
CONFIG = PayTraceConfig(seed_people=6)


@pytest.fixture
def world(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path, people=3) as made:
        yield made


def _no_card_data(rows: list[dict]) -> None:  # type: ignore[type-arg]
    for row in rows:
        text = repr(row["input"])
        assert "masked" not in text
        assert not re.search(r"\d{4}\b.*x{4}|x{4}.*\d{4}", text)


def test_the_live_preview_of_the_cash_receipt_spec_maps_every_paytrace_amount(
    client, db, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {make_user(db, Role.ADMIN).token}"}
    with serve_in_thread(create_app(tmp_path / "pt", config=CONFIG)) as base:
        created = client.post(
            "/api/v1/connections",
            headers=headers,
            json={
                "kind": "paytrace",
                "name": "PayTrace sandbox",
                "settings": {
                    "username": CONFIG.username,
                    "integrator_id": CONFIG.integrator_id,
                    "api_base_url": base,
                },
                "secrets": {"password": CONFIG.password},
            },
        )
        assert created.status_code == 201, created.text
        response = client.post(
            f"/api/v1/mappings/{SPEC}/preview",
            headers=headers,
            json={"source": "recent", "limit": 5},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["records"] == 5
    assert [row["errors"] for row in body["rows"]] == [[]] * 5
    assert body["failed"] == 0
    for row in body["rows"]:  # exact: the amount posted is the amount PayTrace has
        assert Decimal(row["output"]["TranAmt"]) == abs(Decimal(row["input"]["amount"]))
    _no_card_data(body["rows"])


def test_the_preview_runs_over_the_newest_payments_in_the_inbox(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    customer = profiles(world)[0]
    invoice = world.open_invoices(int(customer[1:]))[0]["TranID"]
    older = world.pay(customer, "75.00", invoice)
    newer = world.pay(customer, "12.34", invoice)
    world.poll()
    token = make_user(world.runtime.db, Role.OPERATOR).token
    response = client.post(
        f"/api/v1/mappings/{SPEC}/preview",
        headers={"Authorization": f"Bearer {token}"},
        json={"source": "recent", "limit": 5},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "in the inbox" in body["source"]
    assert [row["input"]["transaction_id"] for row in body["rows"]] == [newer, older]
    assert [row["output"]["TranAmt"] for row in body["rows"]] == ["12.34", "75.00"]
    assert [row["output"]["ApplyToInvcID"] for row in body["rows"]] == [invoice, invoice]
    assert body["failed"] == 0
    _no_card_data(body["rows"])


def test_the_portal_offers_a_preview_over_the_newest_real_records(
    world: PaymentsWorld, client
) -> None:  # type: ignore[no-untyped-def]
    customer = profiles(world)[0]
    invoice = world.open_invoices(int(customer[1:]))[0]["TranID"]
    sale = world.pay(customer, "75.00", invoice)
    world.poll()
    csrf = sign_in(client, make_user(world.runtime.db, Role.OPERATOR).email)
    page = client.get(f"/settings/mappings/{SPEC}")
    assert 'data-testid="preview-recent"' in page.text
    yaml = re.search(r'<textarea id="yaml" name="yaml"[^>]*>(.*?)</textarea>', page.text, re.S)
    assert yaml is not None
    shown = client.post(
        f"/settings/mappings/{SPEC}/preview",
        data={
            "csrftoken": csrf,
            "yaml": _unescape(yaml.group(1)),
            "samples": "",
            "records_from": "recent",
        },
    )
    assert shown.status_code == 200, shown.text
    assert "newest PayTrace transactions in the inbox" in shown.text
    assert f"paytrace:{sale}:sale" in shown.text
    assert "0 with errors" in shown.text


def _unescape(html: str) -> str:
    return (
        html.replace("&#39;", "'")
        .replace("&#34;", '"')
        .replace("&quot;", '"')
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
    )
