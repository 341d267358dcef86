"""Fault injection shared by every simulator: the real world, on demand and reproducibly.

A :class:`FaultPlan` says what goes wrong and how often; a :class:`FaultInjector` draws
from a seeded random generator so that a test run with the same seed and the same
request order sees the same faults. HTTP simulators wrap their app in
:class:`FaultMiddleware` and mount :func:`admin_routes` at ``/_sandbox/faults``; the
Sage 500 simulator asks the injector directly (lock timeouts, import errors).
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledgerlink.clock import SYSTEM_CLOCK, Clock

ADMIN_PREFIX = "/_sandbox"


class FaultPlan(BaseModel):
    """What goes wrong. Rates are probabilities per request (0 = never, 1 = always)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, description="Seed of the random draws; same seed, same faults.")
    latency_ms: int = Field(0, ge=0, le=120_000, description="Fixed delay added to every answer.")
    jitter_ms: int = Field(0, ge=0, le=120_000, description="Extra random delay, 0..jitter_ms.")
    error_rate: float = Field(0.0, ge=0, le=1, description="Share answered with error_status.")
    error_status: Literal[500, 502, 503, 504] = 503
    rate_limit_rate: float = Field(0.0, ge=0, le=1, description="Share answered 429.")
    retry_after_seconds: int | None = Field(
        1, ge=0, le=3600, description="Retry-After on injected 429s; null sends none."
    )
    hang_rate: float = Field(0.0, ge=0, le=1, description="Share that hangs (client timeout).")
    hang_seconds: float = Field(30.0, ge=0, le=600)
    drop_rate: float = Field(0.0, ge=0, le=1, description="Share whose connection is cut.")
    partition_seconds: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="Cut every connection for this many seconds from when the plan is set, "
        "then answer again: a network partition that heals by itself, so a soak or a demo "
        "that dies mid-fault does not leave the simulator cut off.",
    )
    lost_reply_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share handled in full whose reply is then lost (the connection is cut): "
        "the write happened but the client cannot know; only idempotency saves it.",
    )
    expired_token_rate: float = Field(
        0.0, ge=0, le=1, description="Share of authenticated calls told the token expired."
    )
    # Sage 500 only: the import processor's faults.
    lock_timeout_rate: float = Field(0.0, ge=0, le=1, description="Sage 500: lock timeouts.")
    import_error_rate: float = Field(0.0, ge=0, le=1, description="Sage 500: row rejected.")
    #: Paths never faulted (admin, OAuth consent page) besides /_sandbox itself.
    exempt_paths: list[str] = Field(default_factory=list)

    @property
    def active(self) -> bool:
        return any(
            (
                self.latency_ms,
                self.jitter_ms,
                self.error_rate,
                self.rate_limit_rate,
                self.hang_rate,
                self.drop_rate,
                self.partition_seconds,
                self.lost_reply_rate,
                self.expired_token_rate,
                self.lock_timeout_rate,
                self.import_error_rate,
            )
        )

    @classmethod
    def from_cli(cls, options: list[str], base: FaultPlan | None = None) -> FaultPlan:
        """Build a plan from ``--fault key=value`` options (``latency_ms=50``,
        ``error_rate=0.2``, ``retry_after_seconds=none``); errors name the bad option."""
        values: dict[str, Any] = (base or cls()).model_dump()
        for option in options:
            key, sep, raw = option.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in cls.model_fields:
                known = ", ".join(sorted(cls.model_fields))
                raise ValueError(f"--fault {option!r}: expected key=value with key one of {known}")
            value: Any = None if raw.strip().lower() in ("none", "null", "") else raw.strip()
            if key == "exempt_paths":
                value = [p for p in (value or "").split(",") if p]
            values[key] = value
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"--fault {field}: {first['msg']}") from None


Outcome = Literal["pass", "error", "rate_limited", "hang", "drop", "lost_reply", "expired_token"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one request."""

    delay_seconds: float
    outcome: Outcome


class FaultInjector:
    """Thread-safe, seeded source of fault decisions; the plan can change at run time.

    ``clock`` times a partition (``partition_seconds``); tests pass a ``ManualClock`` to
    heal it without waiting.
    """

    def __init__(self, plan: FaultPlan | None = None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._plan = plan or FaultPlan()
        self._rng = random.Random(self._plan.seed)
        self._partition_until = clock.monotonic() + self._plan.partition_seconds
        self.counts: dict[str, int] = {}

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    def replace(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan = plan
            self._rng = random.Random(plan.seed)
            self._partition_until = self._clock.monotonic() + plan.partition_seconds
            self.counts = {}

    @property
    def partition_remaining_seconds(self) -> float:
        """How long the partition set by the plan still lasts (0 when none or healed)."""
        if not self._plan.partition_seconds:
            return 0.0
        return max(0.0, self._partition_until - self._clock.monotonic())

    def _hit(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def decide(self, *, authenticated: bool = False) -> Decision:
        with self._lock:
            plan = self._plan
            if not plan.active:
                return Decision(0.0, "pass")
            delay = plan.latency_ms / 1000
            if plan.jitter_ms:
                delay += self._rng.uniform(0, plan.jitter_ms) / 1000
            outcome: Outcome = "pass"
            partitioned = self._clock.monotonic() < self._partition_until
            if partitioned or self._hit(plan.drop_rate):
                outcome = "drop"
            elif self._hit(plan.lost_reply_rate):
                outcome = "lost_reply"
            elif self._hit(plan.hang_rate):
                outcome = "hang"
            elif self._hit(plan.rate_limit_rate):
                outcome = "rate_limited"
            elif self._hit(plan.error_rate):
                outcome = "error"
            elif authenticated and self._hit(plan.expired_token_rate):
                outcome = "expired_token"
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            return Decision(delay, outcome)

    def draw(self, kind: Literal["lock_timeout", "import_error"]) -> bool:
        """For non-HTTP faults (Sage 500): does this operation fail this way?"""
        with self._lock:
            rate = getattr(self._plan, f"{kind}_rate")
            hit = self._hit(rate)
            if hit:
                self.counts[kind] = self.counts.get(kind, 0) + 1
            return hit


#: Renders the simulator's own "your token expired" answer (each API words it differently).
ExpiredTokenResponse = Callable[[], Response]


def _has_credentials(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope.get("headers", ()))


class _Dropped(Exception):
    """Raised after the response has started so the server cuts the connection."""


class FaultMiddleware:
    """Applies the injector's decision to every request except the admin and exempt paths."""

    def __init__(
        self,
        app: ASGIApp,
        injector: FaultInjector,
        expired_token: ExpiredTokenResponse,
        error_body: Callable[[int], Response] | None = None,
        rate_limited: Callable[[int | None], Response] | None = None,
    ) -> None:
        self.app = app
        self.injector = injector
        self.expired_token = expired_token
        self.error_body = error_body or (
            lambda status: JSONResponse({"error": "injected fault"}, status)
        )
        self.rate_limited = rate_limited or _default_rate_limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        decision = self.injector.decide(authenticated=_has_credentials(scope))
        if decision.delay_seconds:
            await asyncio.sleep(decision.delay_seconds)
        response: Response | None = None
        match decision.outcome:
            case "pass":
                await self.app(scope, receive, send)
                return
            case "hang":
                await asyncio.sleep(self.injector.plan.hang_seconds)
                response = self.error_body(504)
            case "lost_reply":
                # Let the app do the work, swallow its answer, then cut the connection.
                async def swallow(message: Message) -> None:
                    return None

                await self.app(scope, receive, swallow)
                await send({"type": "http.response.start", "status": 200, "headers": []})
                raise _Dropped("reply lost by fault injection")
            case "drop":
                # Start a response and abort: the client sees the connection cut mid-reply.
                await send({"type": "http.response.start", "status": 200, "headers": []})
                raise _Dropped("connection dropped by fault injection")
            case "rate_limited":
                response = self.rate_limited(self.injector.plan.retry_after_seconds)
            case "error":
                response = self.error_body(self.injector.plan.error_status)
            case "expired_token":
                response = self.expired_token()
        assert response is not None
        await response(scope, receive, send)

    def _exempt(self, path: str) -> bool:
        if path.startswith(ADMIN_PREFIX):
            return True
        return any(path.startswith(p) for p in self.injector.plan.exempt_paths)


def _default_rate_limited(retry_after: int | None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return JSONResponse({"error": "rate limited"}, 429, headers=headers)


def admin_routes(
    injector: FaultInjector,
    extra: dict[str, Callable[[Request], Awaitable[Response]]] | None = None,
) -> list[Route]:
    """``GET/PUT/DELETE /_sandbox/faults``: read, replace (JSON FaultPlan) or clear the plan.

    ``extra`` adds simulator-specific admin endpoints under ``/_sandbox/<name>``.
    Admin endpoints are for the machine the sandbox runs on: bind sandboxes to loopback.
    """

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                plan = FaultPlan.model_validate(await request.json())
            except ValidationError as exc:
                return JSONResponse(
                    {
                        "errors": [
                            {"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
                            for e in exc.errors()
                        ]
                    },
                    422,
                )
            except ValueError:
                return JSONResponse({"errors": [{"field": "body", "message": "not JSON"}]}, 400)
            injector.replace(plan)
        elif request.method == "DELETE":
            injector.replace(FaultPlan(seed=injector.plan.seed))
        return JSONResponse(
            {
                "plan": injector.plan.model_dump(),
                "counts": injector.counts,
                "partition_remaining_seconds": round(injector.partition_remaining_seconds, 3),
            }
        )

    routes = [Route(f"{ADMIN_PREFIX}/faults", faults, methods=["GET", "PUT", "DELETE"])]
    for name, endpoint in (extra or {}).items():
        routes.append(Route(f"{ADMIN_PREFIX}/{name}", endpoint, methods=["GET", "POST"]))
    return routes
