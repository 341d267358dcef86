"""The PayTrace connector's checks (ACH) calls against the PayTrace simulator, over a real
socket: sale by account and by profile, hold → fund, void, refund, the checks export (with
returns), and a bank account PayTrace refuses named by field. Only masked account numbers
come back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ledgerlink.connectors.errors import NotFound, Rejected
from ledgerlink.connectors.paytrace import PayTraceGateway, PayTraceOptions
from ledgerlink.domain.money import Money
from ledgerlink.sandbox.paytrace import PayTraceConfig, create_app
from tests.support.ach import ACCOUNT, ROUTING
from tests.support.asgi_server import serve_in_thread

CONFIG = PayTraceConfig(seed_people=4, duplicate_window_seconds=0)


@pytest.fixture
def base(tmp_path: Path) -> Iterator[str]:
    with serve_in_thread(create_app(tmp_path / "paytrace", config=CONFIG)) as url:
        yield url


def _gateway(base: str) -> PayTraceGateway:
    return PayTraceGateway(
        PayTraceOptions(base, CONFIG.username, CONFIG.password, CONFIG.integrator_id)
    )


def test_checks_calls_and_the_export_with_a_return(base: str) -> None:
    usd = lambda text: Money.parse(text, "USD")  # noqa: E731

    async def go() -> None:
        async with _gateway(base) as gateway:
            sale = await gateway.check_sale_by_account(
                ACCOUNT, ROUTING, usd("30.00"), name="Payer", invoice_number="INV-1"
            )
            assert (sale.status, sale.declined) == ("P", False)
            await gateway._post(
                "/v1/customer/create",
                {
                    "customer_id": "BANK1",
                    "check": {"account_number": ACCOUNT, "routing_number": ROUTING},
                    "billing_address": {"name": "Bank Payer"},
                },
                idempotent=False,
            )
            assert await gateway.bank_account("BANK1") == "xx" + ACCOUNT[-4:]
            assert await gateway.bank_account("C00001") is None  # a card profile
            held = await gateway.check_hold_by_customer("BANK1", usd("12.00"))
            assert (await gateway.check_by_id(held.id)).held
            await gateway.check_fund(held.id, usd("10.00"))
            funded = await gateway.check_by_id(held.id)
            assert (funded.status, funded.amount) == ("P", usd("10.00"))
            other = await gateway.check_sale_by_customer("BANK1", usd("7.00"))
            await gateway.check_void(other.id)
            assert (await gateway.check_by_id(other.id)).voided
            with pytest.raises(NotFound):
                await gateway.check_by_id("1")

            httpx.post(f"{base}/_sandbox/settle", timeout=5).raise_for_status()
            refund = await gateway.check_refund(sale.id, usd("5.00"))
            httpx.post(
                f"{base}/_sandbox/checks/return",
                json={"check_transaction_id": int(sale.id), "return_code": "R01"},
                timeout=5,
            ).raise_for_status()

            today = datetime.now(UTC).date()
            exported = {
                c.id: c
                for c in await gateway.checks(today - timedelta(days=1), today + timedelta(days=1))
            }
            assert exported[held.id].status == "S"  # funded, then settled
            assert exported[sale.id].masked_account == "xx" + ACCOUNT[-4:]
            assert exported[sale.id].invoice_number == "INV-1"
            assert (exported[refund.id].kind, exported[refund.id].original_id) == (
                "REFUND",
                sale.id,
            )
            returned = exported[sale.id]
            assert (returned.returned, returned.return_code) == (True, "R01")
            assert exported[held.id].customer_id == "BANK1"
            assert exported[other.id].voided

    asyncio.run(go())


def test_a_bank_account_paytrace_refuses_is_named_by_field(base: str) -> None:
    async def go() -> None:
        async with _gateway(base) as gateway:
            with pytest.raises(Rejected) as refused:
                await gateway.check_sale_by_account(
                    ACCOUNT, "123456789", Money.parse("5.00", "USD"), name="Payer"
                )
            assert refused.value.field == "check.routing_number"
            assert ACCOUNT not in refused.value.message

    asyncio.run(go())
