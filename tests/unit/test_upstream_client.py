"""The shared HTTP client retries what is safe to retry and nothing else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from ledgerlink.connectors.errors import AuthExpired, RateLimited, Rejected, Unavailable
from ledgerlink.connectors.http import (
    RetryPolicy,
    UpstreamClient,
    parse_retry_after,
    retry_budget,
)
from ledgerlink.connectors.throttle import TokenBucket

FAST = RetryPolicy(attempts=5, wait_initial=0.001, wait_max=0.005, wait_jitter=0.0)


def classify(response: httpx.Response) -> Rejected | AuthExpired | None:
    if response.status_code == 401:
        return AuthExpired("sbc", "re-authorise", status=401)
    return Rejected("sbc", f"refused: {response.text}", status=response.status_code)


def scripted(*answers: int | type[Exception]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering each request with the next status (or raising the exception)."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0) if queue else 200
        if isinstance(answer, type):
            raise answer("scripted", request=request)
        return httpx.Response(answer, json={"ok": answer == 200})

    return httpx.MockTransport(handler), seen


def call(transport: httpx.MockTransport, method: str = "GET", **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
    async def go() -> httpx.Response:
        async with UpstreamClient(
            "sbc", "http://upstream.test", classify=classify, policy=FAST, transport=transport
        ) as client:
            return await client.request(method, "/contacts", **kwargs)

    return asyncio.run(go())


def test_a_read_is_retried_through_503s_and_502s() -> None:
    transport, seen = scripted(503, 502, 200)
    assert call(transport).status_code == 200
    assert len(seen) == 3


def test_a_plain_post_is_not_repeated_after_a_502_and_says_the_outcome_is_unknown() -> None:
    transport, seen = scripted(502, 200)
    with pytest.raises(Unavailable) as caught:
        call(transport, "POST", json={})
    assert caught.value.outcome_unknown
    assert len(seen) == 1


def test_a_post_with_its_idempotency_key_is_repeated_after_a_502() -> None:
    transport, seen = scripted(502, 504, 200)
    assert call(transport, "POST", json={}, idempotent=True).status_code == 200
    assert len(seen) == 3


def test_a_post_refused_with_503_or_429_is_safe_to_repeat() -> None:
    transport, seen = scripted(503, 429, 200)
    assert call(transport, "POST", json={}).status_code == 200
    assert len(seen) == 3


@pytest.mark.parametrize("failure", [httpx.ReadTimeout, httpx.RemoteProtocolError])
def test_a_write_that_timed_out_after_sending_is_not_repeated(failure: type[Exception]) -> None:
    transport, seen = scripted(failure, 200)
    with pytest.raises(Unavailable) as caught:
        call(transport, "POST", json={})
    assert caught.value.outcome_unknown
    assert len(seen) == 1


def test_a_connection_that_never_opened_is_retried_even_for_writes() -> None:
    transport, seen = scripted(httpx.ConnectError, httpx.ConnectError, 200)
    assert call(transport, "POST", json={}).status_code == 200
    assert len(seen) == 3


def test_retry_after_is_honoured() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if not handler.calls:  # type: ignore[attr-defined]
            handler.calls.append(time.monotonic())  # type: ignore[attr-defined]
            return httpx.Response(429, headers={"Retry-After": "1"})
        handler.calls.append(time.monotonic())  # type: ignore[attr-defined]
        return httpx.Response(200)

    handler.calls = []  # type: ignore[attr-defined]
    call(httpx.MockTransport(handler))
    first, second = handler.calls  # type: ignore[attr-defined]
    assert second - first >= 0.95


def test_a_retry_after_beyond_what_a_call_may_wait_is_reported_not_waited() -> None:
    seen: list[httpx.Request] = []

    def long_wait(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(429, headers={"Retry-After": "3600"})

    with pytest.raises(RateLimited) as caught:
        call(httpx.MockTransport(long_wait))
    assert caught.value.retry_after == 3600
    assert len(seen) == 1


def test_the_run_budget_stops_retries_across_calls() -> None:
    transport, seen = scripted(*([503] * 20))

    async def go() -> None:
        async with UpstreamClient(
            "sbc", "http://upstream.test", classify=classify, policy=FAST, transport=transport
        ) as client:
            with retry_budget(3) as budget:
                for _ in range(2):
                    with pytest.raises(Unavailable):
                        await client.request("GET", "/contacts")
                assert budget.remaining == 0

    asyncio.run(go())
    assert len(seen) == 5  # 2 first attempts + 3 retries in total


class CountingAuth:
    def __init__(self) -> None:
        self.token = "old"
        self.renewals = 0

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def renew(self) -> None:
        self.renewals += 1
        self.token = "new"


def _auth_server(valid: Callable[[str], bool]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        return httpx.Response(200 if valid(token) else 401)

    return httpx.MockTransport(handler)


def _with_auth(transport: httpx.MockTransport, auth: CountingAuth) -> httpx.Response:
    async def go() -> httpx.Response:
        async with UpstreamClient(
            "sbc", "http://u.test", classify=classify, auth=auth, policy=FAST, transport=transport
        ) as client:
            return await client.request("GET", "/x")

    return asyncio.run(go())


def test_an_expired_token_is_renewed_once_and_the_call_succeeds() -> None:
    auth = CountingAuth()
    assert _with_auth(_auth_server(lambda t: t == "new"), auth).status_code == 200
    assert auth.renewals == 1


def test_a_token_still_refused_after_renewals_asks_for_reauthorisation() -> None:
    auth = CountingAuth()
    with pytest.raises(AuthExpired):
        _with_auth(_auth_server(lambda t: False), auth)
    assert auth.renewals == 2


def test_validation_errors_are_not_retried() -> None:
    transport, seen = scripted(422, 200)
    with pytest.raises(Rejected):
        call(transport, "POST", json={})
    assert len(seen) == 1


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_the_token_bucket_spaces_requests_to_stay_under_the_limit() -> None:
    bucket = TokenBucket(per_minute=6000, safety=1.0)  # one every 10 ms
    waits = [bucket.reserve() for _ in range(5)]
    assert waits[0] == pytest.approx(0.0, abs=0.002)
    assert waits[4] == pytest.approx(0.04, abs=0.005)


def test_a_pause_holds_every_caller_of_the_bucket() -> None:
    bucket = TokenBucket(per_minute=60_000)
    bucket.pause(0.5)
    assert bucket.reserve() >= 0.49
