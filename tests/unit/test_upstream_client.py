"""The shared HTTP client retries what is safe to retry and nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from ledgerlink.clock import ManualClock
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


def call(  # type: ignore[no-untyped-def]
    transport: httpx.MockTransport,
    method: str = "GET",
    *,
    clock: ManualClock | None = None,
    policy: RetryPolicy = FAST,
    **kwargs,
) -> httpx.Response:
    async def go() -> httpx.Response:
        async with UpstreamClient(
            "sbc",
            "http://upstream.test",
            classify=classify,
            policy=policy,
            transport=transport,
            clock=clock or ManualClock(),
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
    clock = ManualClock()
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(clock.monotonic())
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "40"})
        return httpx.Response(200)

    call(httpx.MockTransport(handler), clock=clock)
    first, second = calls
    assert second - first == 40  # waited out on the clock, not in real time


def test_retry_after_as_an_http_date_counts_from_the_clocks_now() -> None:
    clock = ManualClock()
    calls: list[float] = []
    later = clock.now() + timedelta(seconds=30)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(clock.monotonic())
        if len(calls) == 1:
            date = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
            return httpx.Response(429, headers={"Retry-After": date})
        return httpx.Response(200)

    call(httpx.MockTransport(handler), clock=clock)
    assert calls[1] - calls[0] == 30


def test_backoff_grows_exponentially_up_to_its_cap() -> None:
    clock = ManualClock()
    transport, seen = scripted(503, 503, 503, 503, 200)
    policy = RetryPolicy(attempts=6, wait_initial=2.0, wait_max=5.0, wait_jitter=0.0)
    assert call(transport, clock=clock, policy=policy).status_code == 200
    assert len(seen) == 5
    assert clock.slept == [2.0, 4.0, 5.0, 5.0]


def test_a_call_stops_retrying_when_its_time_is_up() -> None:
    clock = ManualClock()
    transport, seen = scripted(*([503] * 10))
    policy = RetryPolicy(attempts=10, total_seconds=25, wait_initial=10, wait_max=10, wait_jitter=0)
    with pytest.raises(Unavailable):
        call(transport, clock=clock, policy=policy)
    assert len(seen) == 4  # at 0, 10, 20 and 30 s; a failure past 25 s is not retried


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
    bucket = TokenBucket(per_minute=6000, safety=1.0, clock=ManualClock())  # one every 10 ms
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])


def test_a_pause_holds_every_caller_of_the_bucket() -> None:
    bucket = TokenBucket(per_minute=60_000, clock=ManualClock())
    bucket.pause(0.5)
    assert bucket.reserve() == pytest.approx(0.5)


def test_the_bucket_waits_on_its_clock() -> None:
    clock = ManualClock()
    bucket = TokenBucket(per_minute=60, safety=1.0, clock=clock)  # one a second

    async def go() -> list[float]:
        return [await bucket.acquire() for _ in range(3)]

    assert asyncio.run(go()) == [0.0, 1.0, 1.0]
    assert clock.slept == [1.0, 1.0]
