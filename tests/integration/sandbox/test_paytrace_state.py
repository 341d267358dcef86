"""The PayTrace simulator's state: no card data at rest, restarts, faults, silent post."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ledgerlink.sandbox.faults import FaultInjector, FaultPlan
from ledgerlink.sandbox.paytrace import PayTraceConfig, reset
from tests.integration.sandbox.test_paytrace_api import (
    AMEX,
    DISCOVER,
    FUTURE_YEAR,
    MASTERCARD,
    VISA,
    card,
    running,
)
from tests.support.asgi_server import serve_in_thread
from tests.support.waiting import wait_until


def test_no_full_card_number_is_ever_written_to_disk(tmp_path: Path) -> None:
    with running(tmp_path) as paytrace:
        for number in (VISA, MASTERCARD, DISCOVER, AMEX):
            paytrace.sale("15.00", number=number)
            paytrace.post(
                "/v1/customer/create",
                {"customer_id": f"PAN-{number[-4:]}", "credit_card": card(number)},
            )
            paytrace.http.post(
                "/_sandbox/hpf_token",
                json={"number": number, "expiration_month": "1", "expiration_year": FUTURE_YEAR},
            )
        paytrace.settle()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert stored
    for number in (VISA, MASTERCARD, DISCOVER, AMEX):
        assert number.encode() not in stored
    assert b"9997" not in stored  # the Amex CSC


def test_state_survives_a_restart(tmp_path: Path) -> None:
    with running(tmp_path) as paytrace:
        sale = paytrace.sale("19.00")["transaction_id"]
        token = paytrace.token()
    with running(tmp_path) as paytrace:
        paytrace._token = token  # tokens outlive a restart, as PayTrace's do
        assert paytrace.export(sale)["amount"] == 19.0
        state = paytrace.http.get("/_sandbox/state").json()
    assert state["transactions"]["SALE"]["Pending settlement"] == 1


def test_reset_forgets_everything_and_reseeds(tmp_path: Path) -> None:
    with running(tmp_path) as paytrace:
        paytrace.sale("19.00")
        before = paytrace.http.get("/_sandbox/state").json()
    reset(tmp_path)
    with running(tmp_path) as paytrace:
        after = paytrace.http.get("/_sandbox/state").json()
    assert after["transaction_count"] == before["transaction_count"] - 1
    assert after["customers"] == before["customers"]


def test_state_counts_support_exactly_once_checks(tmp_path: Path) -> None:
    with running(tmp_path) as paytrace:
        start = paytrace.http.get("/_sandbox/state").json()
        sale = paytrace.sale("19.00")["transaction_id"]
        paytrace.settle()
        paytrace.post(
            "/v1/transactions/refund/for_transaction", {"transaction_id": sale, "amount": "4.00"}
        )
        state = paytrace.http.get("/_sandbox/state").json()
    assert state["transaction_count"] == start["transaction_count"] + 2
    assert state["refunds"]["count"] == start["refunds"]["count"] + 1


def test_injected_expired_token_looks_like_paytrace(tmp_path: Path) -> None:
    injector = FaultInjector()
    with running(tmp_path, faults=injector) as paytrace:
        paytrace.token()
        put = paytrace.http.put("/_sandbox/faults", json={"expired_token_rate": 1.0})
        assert put.status_code == 200
        response = paytrace.post("/v1/customer/export", {"customer_id": "C00001"})
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        paytrace.http.delete("/_sandbox/faults")
        assert paytrace.post("/v1/customer/export", {"customer_id": "C00001"}).status_code == 200


def test_injected_rate_limit_and_server_errors(tmp_path: Path) -> None:
    injector = FaultInjector(FaultPlan(rate_limit_rate=1.0, retry_after_seconds=3))
    with running(tmp_path, faults=injector) as paytrace:
        limited = paytrace.http.post("/oauth/token", data={"grant_type": "password"})
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "3"
        paytrace.http.put("/_sandbox/faults", json={"error_rate": 1.0, "error_status": 503})
        assert paytrace.http.post("/oauth/token", data={}).status_code == 503


def test_silent_post_is_delivered_for_each_transaction(tmp_path: Path) -> None:
    received: list[dict[str, str]] = []

    async def receive(request: Request) -> PlainTextResponse:
        form = await request.form()
        assert set(form) == {"parmList"}  # PayTrace's silent post: one KEY~value| list
        pairs = [p.split("~", 1) for p in str(form["parmList"]).split("|") if p]
        received.append(dict(pairs))  # type: ignore[arg-type]
        return PlainTextResponse("OK")

    receiver = Starlette(routes=[Route("/silent-post", receive, methods=["POST"])])
    with serve_in_thread(receiver) as receiver_url:
        config = PayTraceConfig(seed_people=4, silent_post_url=f"{receiver_url}/silent-post")
        with running(tmp_path / "pt", config) as paytrace:
            sale = paytrace.sale("17.00", invoice_id="INV-SP")["transaction_id"]
            wait_until(lambda: received, timeout=5, what="the sale's silent post")
            paytrace.post("/v1/transactions/void", {"transaction_id": sale})
            wait_until(lambda: len(received) >= 2, timeout=5, what="the void's silent post")
    assert received[0]["TRANSACTIONID"] == str(sale)
    assert received[0]["TRANXTYPE"] == "SALE"
    assert received[0]["ORDERID"] == "INV-SP"
    assert received[0]["AMOUNT"] == "17.00"
    assert received[0]["RESPONSECODE"] == "101"
    assert received[1]["TRANXTYPE"] == "VOID"


def test_unreachable_silent_post_receiver_never_fails_the_api_call(tmp_path: Path) -> None:
    config = PayTraceConfig(seed_people=4, silent_post_url="http://127.0.0.1:9/nothing")
    with running(tmp_path, config) as paytrace:
        assert paytrace.sale("17.00")["response_code"] == 101


def test_seed_is_deterministic(tmp_path: Path) -> None:
    exports = []
    for name in ("a", "b"):
        with running(tmp_path / name) as paytrace:
            state = paytrace.http.get("/_sandbox/state").json()
            customers = paytrace.post("/v1/customer/export", {}).json()["customers"]
            exports.append((state["transaction_count"], [c["customer_id"] for c in customers]))
    assert exports[0] == exports[1]
