"""A faithful local simulator of the PayTrace JSON API v1 (see docs/sandbox-paytrace.md).

``create_app(state_dir)`` serves OAuth, transactions, exports, the customer vault,
settlement batches, checks (ACH) and Level 3 data over HTTP, keeps its state in
``state_dir/paytrace.sqlite3`` across restarts, never stores a full card or account
number or CSC, and adds sandbox-only endpoints under ``/_sandbox`` (faults, settle,
disputes, check returns, hosted-field tokens, state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response

from ledgerlink.clock import Clock as TimeSource
from ledgerlink.sandbox.faults import FaultInjector, FaultMiddleware, admin_routes
from ledgerlink.sandbox.paytrace import settlement
from ledgerlink.sandbox.paytrace.admin import Admin
from ledgerlink.sandbox.paytrace.checks import Checks
from ledgerlink.sandbox.paytrace.clock import Clock
from ledgerlink.sandbox.paytrace.config import PayTraceConfig
from ledgerlink.sandbox.paytrace.gateway import Gateway, invalid_token
from ledgerlink.sandbox.paytrace.level_three import LevelThree
from ledgerlink.sandbox.paytrace.protect import Protect
from ledgerlink.sandbox.paytrace.seed import seed
from ledgerlink.sandbox.paytrace.silent_post import SilentPost
from ledgerlink.sandbox.paytrace.store import FILE_NAME, Store

__all__ = ["PayTraceConfig", "create_app", "reset"]

log = logging.getLogger(__name__)


def create_app(
    state_dir: Path,
    *,
    config: PayTraceConfig | None = None,
    faults: FaultInjector | None = None,
    time_source: TimeSource | None = None,
) -> Starlette:
    """The simulator as an ASGI app; seeds ``state_dir`` on first start. ``time_source``
    (default the system clock) lets a test move the simulator's time, e.g. past a token's
    lifetime."""
    config = config or PayTraceConfig()
    injector = faults or FaultInjector()
    clock = (
        Clock(config.timezone)
        if time_source is None
        else Clock(config.timezone, now=lambda: time_source.now().timestamp())
    )
    store = Store(Path(state_dir))
    seed(store, config, clock)
    silent_post = SilentPost(config.silent_post_url)
    gateway = Gateway(store, config, clock, silent_post)
    checks = Checks(gateway)
    protect = Protect(gateway)
    admin = Admin(gateway, checks)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = None
        if config.settle_daily_at:
            task = asyncio.create_task(_settle_daily(store, config, clock, config.settle_daily_at))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            await silent_post.drain(timeout=2.0)
            await silent_post.close()

    app = Starlette(
        routes=[
            *gateway.routes(
                extra={**checks.table(), **LevelThree(gateway).table(), **protect.table()}
            ),
            *protect.routes(),
            *admin_routes(injector, extra=admin.endpoints()),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(
        FaultMiddleware,
        injector=injector,
        expired_token=lambda: invalid_token("The access token expired"),
        error_body=_server_error,
        rate_limited=_rate_limited,
    )
    app.state.store = store
    app.state.gateway = gateway
    return app


def reset(state_dir: Path) -> None:
    """Forget everything; the next start seeds fresh data."""
    for suffix in ("", "-wal", "-shm"):
        path = Path(state_dir) / f"{FILE_NAME}{suffix}"
        path.unlink(missing_ok=True)


def _server_error(status: int) -> Response:
    return JSONResponse(
        {
            "success": False,
            "status_message": "The service is temporarily unavailable. Please try again later.",
        },
        status,
    )


def _rate_limited(retry_after: int | None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return JSONResponse(
        {"success": False, "status_message": "Too many requests. Please slow down."},
        429,
        headers=headers,
    )


async def _settle_daily(store: Store, config: PayTraceConfig, clock: Clock, at: str) -> None:
    """Settle the open batch once a day at ``at`` (HH:MM, simulator time zone), with its
    deposit (fees and withheld chargebacks, see settlement.py)."""
    last_day = None
    while True:
        await asyncio.sleep(20)
        moment = clock.local(clock.now())
        if moment.strftime("%H:%M") >= at and moment.date() != last_day:
            last_day = moment.date()
            summary = settlement.settle(store, config, clock)
            log.info("paytrace.settled batch=%s", summary and summary["batch_number"])
