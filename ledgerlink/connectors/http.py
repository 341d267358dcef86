"""The one HTTP client factory every connector uses.

It owns what each upstream call needs and nobody should re-implement: timeouts and
pooling, the per-upstream token bucket, retries with jittered exponential backoff (via
stamina) on connection errors, timeouts, ``429`` (honouring ``Retry-After``) and
``502/503/504``, a retry budget per run, one token renewal on ``401``, and metrics.

The rule that keeps money exactly-once: a request that may have reached the upstream
(read timeout, dropped connection, 500/502/504) is repeated only when it is idempotent —
a read, or a write carrying its idempotency key. Otherwise the caller gets
``Unavailable(outcome_unknown=True)`` and must look before writing again.
"""

from __future__ import annotations

import email.utils
import functools
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
import httpx
import stamina
import structlog
from httpx_aiohttp import AiohttpTransport
from prometheus_client import Counter, Histogram

from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.connectors import registry
from ledgerlink.connectors.errors import RateLimited, Unavailable, UpstreamError
from ledgerlink.connectors.recent_calls import RECENT_CALLS, origin_of
from ledgerlink.connectors.throttle import TokenBucket

log = structlog.get_logger("ledgerlink.connectors")

UPSTREAM_REQUESTS = Counter(
    "ledgerlink_upstream_requests_total", "Requests to external systems", ["system", "outcome"]
)
UPSTREAM_LATENCY = Histogram(
    "ledgerlink_upstream_request_seconds",
    "Time for an external system to answer one request",
    ["system"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPSTREAM_THROTTLED = Counter(
    "ledgerlink_upstream_throttled_seconds_total",
    "Time spent waiting for the client-side rate limit",
    ["system"],
)
UPSTREAM_RETRIES = Counter("ledgerlink_upstream_retries_total", "Retried requests", ["system"])

#: A token refused right after renewal is renewed once more (an upstream can expire a
#: token early, e.g. after a password change elsewhere); a third refusal is final.
MAX_RENEWALS = 2
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Statuses meaning "not processed, try later" (safe to repeat any request).
REFUSED_STATUSES = frozenset({429, 503})
#: Statuses where the upstream may have acted before failing (repeat only idempotent calls).
MAYBE_PROCESSED_STATUSES = frozenset({500, 502, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    total_seconds: float = 90.0
    wait_initial: float = 0.2
    wait_max: float = 10.0
    wait_jitter: float = 0.5
    #: A Retry-After longer than this is not waited out inside one call: the error goes
    #: up so the job can be rescheduled instead of holding a worker.
    max_retry_after: float = 120.0


class RetryBudget:
    """How many retries one run (a sync, a posting batch) may spend across all its calls,
    so an upstream outage fails the run quickly instead of multiplying every call's wait."""

    def __init__(self, retries: int) -> None:
        self.remaining = retries
        self.spent = 0
        self._lock = threading.Lock()

    def spend(self) -> bool:
        with self._lock:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            self.spent += 1
            return True


_budget: ContextVar[RetryBudget | None] = ContextVar("ledgerlink_retry_budget", default=None)


@contextmanager
def retry_budget(retries: int) -> Iterator[RetryBudget]:
    """Calls made inside this block share ``retries`` retries."""
    budget = RetryBudget(retries)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


class Auth(Protocol):
    """How a connector authenticates; renewed once when the upstream answers 401."""

    async def headers(self) -> dict[str, str]: ...

    async def renew(self) -> None: ...


#: Turns a non-success response into the connector's typed error (None: not an error).
Classifier = Callable[[httpx.Response], UpstreamError | None]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date, counted from ``now``,
    default the system clock); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _keep_no_cookies(response: httpx.Response) -> None:
    return None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The certificate checks every upstream call makes, built once per process.

    It is httpx's default (certifi's authorities, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``
    when set), the one each client would otherwise build for itself: that reads and
    parses the whole authority bundle, about 25 ms of CPU, and a connector, a token
    request or a demo call each makes a client. A context is safe to share between
    clients and threads once set up, and nothing changes it afterwards."""
    return httpx.create_ssl_context()


class UpstreamClient:
    """An httpx.AsyncClient with the policies above. One per run and event loop."""

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        classify: Classifier,
        auth: Auth | None = None,
        throttle: TokenBucket | None = None,
        policy: RetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
        max_connections: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
        prefer_http2: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.system = system
        self._origin = origin_of(base_url)
        #: Backoff and Retry-After waits are taken on this clock (tests pass a ManualClock).
        self.clock = clock
        self.classify = classify
        self.auth = auth
        self.throttle = throttle
        self.policy = policy or RetryPolicy()
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        http2 = prefer_http2 and base_url.startswith("https://")
        if transport is None and not http2:
            # aiohttp under httpx: twice the requests/s of httpcore once dozens of requests
            # are in flight (httpcore's pool scans every connection for every request).
            transport = AiohttpTransport(limits=limits, verify=tls_context())
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            verify=tls_context(),
            timeout=timeout or httpx.Timeout(30.0, connect=5.0),
            limits=limits,
            http2=http2,
            transport=transport,
            headers={"User-Agent": "ledgerlink", **(headers or {})},
        )
        # These APIs authenticate with bearer tokens and set no cookies we need, yet httpx
        # runs every response through the standard library's cookie jar (a tenth of a
        # request's CPU under load). Keep the jar empty and skip that work.
        self._client.cookies.extract_cookies = _keep_no_cookies  # type: ignore[method-assign]

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        throttle: TokenBucket | None = None,
        authenticate: bool = True,
    ) -> httpx.Response:
        """Send with retries; returns a success response or raises an UpstreamError."""
        repeatable = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        bucket = throttle or self.throttle
        renewals = 0
        policy = self.policy
        clock = self.clock
        started = clock.monotonic()
        failures = 0
        owed = 0.0  # the wait before the next attempt, taken on self.clock

        def should_retry(exc: Exception) -> bool | float:
            nonlocal failures, owed
            failures += 1
            if not isinstance(exc, UpstreamError) or not exc.retryable:
                return False
            budget = _budget.get()
            if budget is not None and not budget.spend():
                return False
            UPSTREAM_RETRIES.labels(self.system).inc()
            if isinstance(exc, RateLimited) and exc.retry_after is not None:
                owed = exc.retry_after
            else:  # stamina's jittered exponential backoff, same parameters
                owed = min(
                    policy.wait_max,
                    policy.wait_initial * 2 ** (failures - 1)
                    + (random.uniform(0, policy.wait_jitter) if policy.wait_jitter else 0),  # noqa: S311
                )
            if clock.monotonic() - started >= policy.total_seconds:
                return False  # the call's time is up (stamina's timeout, on our clock)
            # stamina decides whether to retry (attempts, its real-time timeout, its
            # instrumentation); the wait itself is taken on self.clock below, so a test
            # clock can move through a Retry-After without sleeping it out.
            return 0.0

        async for attempt in stamina.retry_context(
            on=should_retry,
            attempts=policy.attempts,
            timeout=policy.total_seconds,
            wait_initial=policy.wait_initial,
            wait_max=policy.wait_max,
            wait_jitter=policy.wait_jitter,
        ):
            if owed:
                wait, owed = owed, 0.0
                log.info("upstream.retry_wait", system=self.system, seconds=round(wait, 3))
                await clock.asleep(wait)
            with attempt:
                while True:  # renews the token at most MAX_RENEWALS times per call
                    response = await self._send_once(
                        method,
                        path,
                        params,
                        json,
                        data,
                        headers,
                        repeatable,
                        bucket,
                        authenticate,
                    )
                    if (
                        response.status_code == 401
                        and self.auth
                        and authenticate
                        and renewals < MAX_RENEWALS
                    ):
                        renewals += 1
                        await self.auth.renew()
                        continue
                    break
                error = self._error_for(response, repeatable, bucket)
                if error is not None:
                    raise error
                return response
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    async def _send_once(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json: Any,
        data: dict[str, str] | None,
        headers: dict[str, str] | None,
        repeatable: bool,
        bucket: TokenBucket | None,
        authenticate: bool,
    ) -> httpx.Response:
        if bucket is not None:
            waited = await bucket.acquire()
            if waited:
                UPSTREAM_THROTTLED.labels(self.system).inc(waited)
        merged = dict(headers or {})
        if self.auth is not None and authenticate:
            merged.update(await self.auth.headers())
        started = time.perf_counter()
        try:
            response = await self._client.request(
                method, path, params=params, json=json, data=data, headers=merged
            )
        except httpx.TransportError as exc:
            if not was_sent(exc):
                self._count("connection_error")
                raise Unavailable(
                    self.system,
                    f"{_name(self.system)} could not be reached ({_describe(exc)}); "
                    "check the address and the network, it will be retried",
                ) from exc
            timed_out = isinstance(exc, httpx.TimeoutException)
            self._count("timeout" if timed_out else "connection_dropped")
            silence = (
                "did not answer in time" if timed_out else "cut the connection before answering"
            )
            if repeatable:
                raise Unavailable(
                    self.system, f"{_name(self.system)} {silence} ({_describe(exc)})"
                ) from exc
            raise Unavailable(
                self.system,
                f"{_name(self.system)} {silence} to a write; it may or may not "
                "have been applied, so it is not repeated blindly",
                retryable=False,
                outcome_unknown=True,
            ) from exc
        finally:
            UPSTREAM_LATENCY.labels(self.system).observe(time.perf_counter() - started)
        log.debug(
            "upstream.response",
            system=self.system,
            method=method,
            path=path,
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    def _count(self, outcome: str) -> None:
        """One call's outcome: in the Prometheus counter and in the dashboard's recent calls."""
        UPSTREAM_REQUESTS.labels(self.system, outcome).inc()
        RECENT_CALLS.note(self.system, outcome, self._origin)

    def _error_for(
        self, response: httpx.Response, repeatable: bool, bucket: TokenBucket | None
    ) -> UpstreamError | None:
        status = response.status_code
        if status < 400:
            self._count("ok")
            return None
        if status == 429:
            self._count("rate_limited")
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock.now())
            if bucket is not None:
                bucket.pause(retry_after if retry_after is not None else self.policy.wait_initial)
            too_long = retry_after is not None and retry_after > self.policy.max_retry_after
            return RateLimited(
                self.system,
                f"{_name(self.system)} is rate limiting us"
                + (f"; it asks to wait {retry_after:.0f} s" if retry_after else ""),
                status=429,
                retry_after=retry_after,
                retryable=not too_long,
            )
        if status in REFUSED_STATUSES or (status in MAYBE_PROCESSED_STATUSES and repeatable):
            self._count("unavailable")
            return Unavailable(
                self.system,
                f"{_name(self.system)} is temporarily unavailable (HTTP {status})",
                status=status,
            )
        if status in MAYBE_PROCESSED_STATUSES:
            self._count("unavailable")
            return Unavailable(
                self.system,
                f"{_name(self.system)} failed while handling a write (HTTP {status}); it may "
                "or may not have been applied, so it is not repeated blindly",
                status=status,
                retryable=False,
                outcome_unknown=True,
            )
        error = self.classify(response)
        self._count(_outcome(error))
        return error or UpstreamError(
            self.system, f"{_name(self.system)} answered HTTP {status}", status=status
        )


def was_sent(exc: httpx.TransportError) -> bool:
    """Whether the request may have reached the upstream before ``exc``.

    Only a failure to connect proves it did not; everything after the connection opened
    (read timeout, dropped connection, broken response) may have been processed. The
    aiohttp transport reports some of those as httpx connect errors, so its original
    exception decides when there is one.
    """
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return False
    if isinstance(cause, aiohttp.ClientError | TimeoutError | OSError):
        return True
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _describe(exc: Exception) -> str:
    cause = exc.__cause__
    return type(cause).__name__ if cause is not None else type(exc).__name__


def _name(system: str) -> str:
    return registry.label(system)


def _outcome(error: UpstreamError | None) -> str:
    return type(error).__name__.lower() if error is not None else "error"
