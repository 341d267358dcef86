"""The PayTrace connector's Level 3 call against the PayTrace simulator, over a real
socket: each brand's shape is accepted for an approved, unsettled sale, and PayTrace's
refusals (a field of the wrong shape, a settled sale) are ``Rejected`` naming the field."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from ledgerlink.connectors.errors import Rejected
from ledgerlink.connectors.paytrace import PayTraceGateway, PayTraceOptions
from ledgerlink.domain.level_three import MASTERCARD, LevelThreeData, LevelThreeLine
from ledgerlink.domain.money import Money
from ledgerlink.sandbox.paytrace import PayTraceConfig, create_app
from tests.support.asgi_server import serve_in_thread

CONFIG = PayTraceConfig(seed_people=4, duplicate_window_seconds=0)
MASTERCARD_PROFILE = "C00001"  # the sandbox seeds person 1 with its MasterCard test card


def usd(text: str) -> Money:
    return Money.parse(text, "USD")


def data(description: str = "Steel widgets") -> LevelThreeData:
    line = LevelThreeLine(
        description, "WIDGET-01", "31161500", Decimal(4), "EA", usd("4.24"), usd("0"), usd("16.96")
    )
    return LevelThreeData(MASTERCARD, "INV-7", "C00001", usd("1.36"), "98101", "", (line,))


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    with serve_in_thread(create_app(tmp_path / "pt", config=CONFIG)) as url:
        yield url


def gateway(base_url: str) -> PayTraceGateway:
    return PayTraceGateway(
        PayTraceOptions(base_url, CONFIG.username, CONFIG.password, CONFIG.integrator_id)
    )


async def _sale_and_level_three(base_url: str, sent: LevelThreeData, *, settle: bool) -> str:
    async with gateway(base_url) as paytrace:
        sale = await paytrace.sale_by_customer(MASTERCARD_PROFILE, usd("18.32"))
        if settle:
            httpx.post(f"{base_url}/_sandbox/settle", timeout=5).raise_for_status()
        await paytrace.add_level_three(sale.id, sent)
        return sale.id


def test_mastercard_level_three_is_added_to_an_unsettled_sale(
    base_url: str, tmp_path: Path
) -> None:
    sale = asyncio.run(_sale_and_level_three(base_url, data(), settle=False))
    with sqlite3.connect(tmp_path / "pt" / "paytrace.sqlite3") as db:
        brand, kept = db.execute(
            "SELECT brand, data FROM level_three WHERE transaction_id = ?", (int(sale),)
        ).fetchone()
    body = json.loads(kept)
    assert brand == "MasterCard"
    assert body["tax_amount"] == "1.36"
    assert body["shipping_address"] == {"zip": "98101"}
    assert body["line_items"][0]["debit_or_credit"] == "D"
    assert "commodity_code" not in body["line_items"][0]


def test_paytrace_refusing_a_line_is_rejected_naming_the_field(base_url: str) -> None:
    too_long = "A description longer than PayTrace's 35 characters"
    with pytest.raises(Rejected) as refused:
        asyncio.run(_sale_and_level_three(base_url, data(too_long), settle=False))
    assert "line_items[0].description" in refused.value.message
    assert refused.value.upstream_code == "880"


def test_a_settled_sale_takes_no_level_three(base_url: str) -> None:
    with pytest.raises(Rejected) as refused:
        asyncio.run(_sale_and_level_three(base_url, data(), settle=True))
    assert refused.value.upstream_code == "881"
    assert "unsettled" in refused.value.message
