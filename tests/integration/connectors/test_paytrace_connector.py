"""The PayTrace connector against the PayTrace simulator, over a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from ledgerlink.connectors.errors import Misconfigured, NotFound, Rejected, Unavailable
from ledgerlink.connectors.http import RetryPolicy
from ledgerlink.connectors.paytrace import PayTraceGateway, PayTraceOptions
from ledgerlink.domain.accounts import CardOutcome, CardTransactionKind
from ledgerlink.domain.money import Money
from ledgerlink.sandbox.faults import FaultInjector, FaultPlan
from ledgerlink.sandbox.paytrace import PayTraceConfig, create_app
from tests.support.asgi_server import serve_in_thread

CONFIG = PayTraceConfig(seed_people=20)
FAST = RetryPolicy(attempts=8, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01)


class Sandbox:
    def __init__(self, base_url: str, faults: FaultInjector) -> None:
        self.base_url = base_url
        self.faults = faults

    def gateway(self, password: str | None = None) -> PayTraceGateway:
        return PayTraceGateway(
            PayTraceOptions(
                api_base_url=self.base_url,
                username=CONFIG.username,
                password=password or CONFIG.password,
                integrator_id=CONFIG.integrator_id,
            ),
            policy=FAST,
        )

    def settle(self) -> None:
        httpx.post(f"{self.base_url}/_sandbox/settle", timeout=5).raise_for_status()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    faults = FaultInjector()
    with serve_in_thread(create_app(tmp_path / "paytrace", config=CONFIG, faults=faults)) as url:
        yield Sandbox(url, faults)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_a_sale_on_a_stored_profile_is_approved_and_exported(sandbox: Sandbox) -> None:
    async def go():  # type: ignore[no-untyped-def]
        async with sandbox.gateway() as gateway:
            sale = await gateway.sale_by_customer(
                "C00001", Money(4250, "USD"), invoice_number="INV-9"
            )
            exported = await gateway.transaction(sale.id)
            listed = await gateway.transactions(date.today() - timedelta(days=1), date.today())
            return sale, exported, listed

    sale, exported, listed = run(go())
    assert sale.outcome is CardOutcome.APPROVED
    assert exported.amount == Money(4250, "USD")
    assert exported.invoice_number == "INV-9"
    assert exported.customer_id == "C00001"
    assert exported.masked_card.endswith(exported.masked_card[-4:])
    assert sale.id in {t.id for t in listed}


def test_a_decline_is_an_outcome_not_an_error(sandbox: Sandbox) -> None:
    async def go():  # type: ignore[no-untyped-def]
        async with sandbox.gateway() as gateway:
            return await gateway.sale_by_customer("C00001", Money(29, "USD"))

    declined = run(go())
    assert declined.outcome is CardOutcome.DECLINED
    assert declined.status_message == (
        "Your transaction was not approved. EXPIRED CARD - Expired card"
    )


def test_a_duplicate_sale_is_a_decline_that_says_so_and_charges_nothing(
    sandbox: Sandbox,
) -> None:
    async def go():  # type: ignore[no-untyped-def]
        async with sandbox.gateway() as gateway:
            first = await gateway.sale_by_customer(
                "C00002", Money(4400, "USD"), invoice_number="DUP-9"
            )
            second = await gateway.sale_by_customer(
                "C00002", Money(4400, "USD"), invoice_number="DUP-9"
            )
            return first, second, await gateway.transaction(second.id)

    first, second, exported = run(go())
    assert first.outcome is CardOutcome.APPROVED
    assert second.outcome is CardOutcome.DECLINED
    assert "Duplicate transaction" in second.status_message
    assert exported.outcome is CardOutcome.DECLINED


def test_error_981_is_a_missing_permission_not_a_field(tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"denied_paths": ["/v1/transactions/refund/for_transaction"]})
    app = create_app(tmp_path / "paytrace", config=config)

    async def go(base_url: str):  # type: ignore[no-untyped-def]
        async with Sandbox(base_url, FaultInjector()).gateway() as gateway:
            sale = await gateway.sale_by_customer("C00001", Money(700, "USD"))
            httpx.post(f"{base_url}/_sandbox/settle", timeout=5).raise_for_status()
            with pytest.raises(Misconfigured) as refused:
                await gateway.refund(sale.id)
            return refused.value

    with serve_in_thread(app) as url:
        refused = run(go(url))
    assert refused.upstream_code == "981"
    assert "insufficient permissions" in str(refused)
    assert "administrator" in str(refused)


def test_void_works_before_settlement_and_refund_only_after(sandbox: Sandbox) -> None:
    async def go():  # type: ignore[no-untyped-def]
        async with sandbox.gateway() as gateway:
            first = await gateway.sale_by_customer("C00002", Money(1000, "USD"), invoice_number="A")
            with pytest.raises(Rejected) as refused:
                await gateway.refund(first.id)
            voided = await gateway.void(first.id)
            second = await gateway.sale_by_customer(
                "C00002", Money(2000, "USD"), invoice_number="B"
            )
            sandbox.settle()
            with pytest.raises(Rejected) as too_late:
                await gateway.void(second.id)
            refund = await gateway.refund(second.id, Money(500, "USD"))
            return refused.value, voided, too_late.value, refund

    refused, voided, too_late, refund = run(go())
    assert refused.upstream_code == "817"
    assert refused.field == "transaction_id"
    assert voided.outcome is CardOutcome.APPROVED
    assert too_late.upstream_code == "818"
    assert refund.kind is CardTransactionKind.REFUND
    assert refund.outcome is CardOutcome.APPROVED


def test_settlement_batches_are_readable(sandbox: Sandbox) -> None:
    async def go():  # type: ignore[no-untyped-def]
        async with sandbox.gateway() as gateway:
            await gateway.sale_by_customer("C00001", Money(1234, "USD"), invoice_number="X1")
            sandbox.settle()
            batches = await gateway.batches(date.today() - timedelta(days=1), date.today())
            newest = max(batches, key=lambda b: int(b.number))
            return newest, await gateway.batch_transactions(newest.number)

    newest, transactions = run(go())
    assert newest.count == 1
    assert newest.net == Money(1234, "USD")
    assert [t.amount for t in transactions] == [Money(1234, "USD")]


def test_unknown_transactions_and_customers_are_not_found(sandbox: Sandbox) -> None:
    async def go() -> None:
        async with sandbox.gateway() as gateway:
            with pytest.raises(NotFound):
                await gateway.transaction("999999999")
            with pytest.raises(NotFound):
                await gateway.customer("NOBODY")

    run(go())


def test_a_wrong_password_fails_the_credentials_check_with_a_fix(sandbox: Sandbox) -> None:
    async def go():  # type: ignore[no-untyped-def]
        async with sandbox.gateway(password="wrong") as gateway:
            return await gateway.check()

    (result,) = run(go())
    assert not result.ok
    assert "username and password" in result.detail


def test_expired_tokens_are_renewed_transparently(sandbox: Sandbox) -> None:
    sandbox.faults.replace(FaultPlan(seed=3, expired_token_rate=0.2))

    async def go():  # type: ignore[no-untyped-def]
        async with sandbox.gateway() as gateway:
            return [await gateway.customer(f"C{n:05d}") for n in (1, 2, 5, 6, 9, 10)]

    assert len(run(go())) == 6
    assert sandbox.faults.counts.get("expired_token", 0) >= 1


def test_reads_survive_5xx_429_and_latency(sandbox: Sandbox) -> None:
    sandbox.faults.replace(
        FaultPlan(seed=11, error_rate=0.2, rate_limit_rate=0.1, retry_after_seconds=0, jitter_ms=20)
    )

    async def go():  # type: ignore[no-untyped-def]
        async with sandbox.gateway() as gateway:
            return await asyncio.gather(
                *(gateway.customer(f"C{n:05d}") for n in (1, 2, 5, 6, 9, 10, 13, 14))
            )

    assert len(run(go())) == 8
    assert sandbox.faults.counts.get("error", 0) + sandbox.faults.counts.get("rate_limited", 0) > 0


def test_a_gateway_without_integrator_id_is_refused_up_front() -> None:
    with pytest.raises(Misconfigured, match="integrator id"):
        PayTraceGateway(PayTraceOptions("http://127.0.0.1:1", "u", "p", ""))


def test_a_sale_whose_connection_drops_is_not_repeated_and_says_so(sandbox: Sandbox) -> None:
    sandbox.faults.replace(FaultPlan(seed=1, drop_rate=1.0, exempt_paths=["/oauth/token"]))

    async def go() -> Unavailable:
        async with sandbox.gateway() as gateway:
            with pytest.raises(Unavailable) as caught:
                await gateway.sale_by_customer("C00001", Money(999, "USD"), invoice_number="D1")
            return caught.value

    error = run(go())
    assert error.outcome_unknown
    assert not error.retryable
    assert sandbox.faults.counts["drop"] == 1  # sent once, never blindly again


def test_reads_are_retried_through_dropped_connections(sandbox: Sandbox) -> None:
    sandbox.faults.replace(FaultPlan(seed=3, drop_rate=0.4, exempt_paths=["/oauth/token"]))

    async def go():  # type: ignore[no-untyped-def]
        async with sandbox.gateway() as gateway:
            return [await gateway.customer(f"C{n:05d}") for n in (1, 2, 5, 6)]

    assert len(run(go())) == 4
    assert sandbox.faults.counts.get("drop", 0) >= 1


def test_an_unreachable_gateway_is_reported_as_unavailable() -> None:
    async def go() -> Unavailable:
        gateway = PayTraceGateway(
            PayTraceOptions("http://127.0.0.1:9", "u", "p", "i"),
            policy=RetryPolicy(attempts=2, wait_initial=0.01, wait_max=0.01, wait_jitter=0),
        )
        try:
            with pytest.raises(Unavailable) as caught:
                await gateway.customer("C1")
            return caught.value
        finally:
            await gateway.aclose()

    error = run(go())
    assert error.retryable
    assert "could not be reached" in error.message


def test_an_error_body_sent_with_http_200_is_an_error_not_a_decline() -> None:
    """PayTrace's error shape is not always sent with a 4xx (the notes, from recorded
    traffic): a charge answered so must name the field, not read as a declined card."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 7200})
        return httpx.Response(
            200,
            json={
                "success": False,
                "response_code": 1,
                "status_message": "One or more errors has occurred.",
                "errors": {"30": ["Customer ID, C9, was not found or is incomplete."]},
            },
        )

    async def go():  # type: ignore[no-untyped-def]
        gateway = PayTraceGateway(
            PayTraceOptions(
                api_base_url="http://paytrace.invalid",
                username="u",
                password="p",
                integrator_id="i",
            ),
            transport=httpx.MockTransport(answer),
            policy=FAST,
        )
        async with gateway:
            with pytest.raises(NotFound) as missing:
                await gateway.sale_by_customer("C9", Money(100, "USD"))
            return missing.value

    missing = run(go())
    assert missing.upstream_code == "30"
    assert "C9, was not found" in str(missing)
