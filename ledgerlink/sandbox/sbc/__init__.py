"""A faithful local simulator of Sage Business Cloud Accounting API v3.1 (docs/sandbox-sbc.md).

``create_app(state_dir)`` serves OAuth (consent page and token endpoint) and the REST API
under ``/v3.1`` on one host, keeps its state in ``state_dir/sbc.sqlite3`` across restarts
and adds sandbox-only endpoints under ``/_sandbox`` (faults, state, expiring tokens).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.sandbox.faults import FaultInjector, FaultMiddleware, admin_routes
from ledgerlink.sandbox.sbc import admin, conformance
from ledgerlink.sandbox.sbc.api import Api
from ledgerlink.sandbox.sbc.books import Books
from ledgerlink.sandbox.sbc.config import SbcConfig
from ledgerlink.sandbox.sbc.errors import Problem, error_response, unauthorised
from ledgerlink.sandbox.sbc.oauth import AUTHORIZE_PATH, OAuthServer
from ledgerlink.sandbox.sbc.seed import LEAD_BUSINESS_ID, SECOND_BUSINESS_ID, seed
from ledgerlink.sandbox.sbc.store import FILE_NAME, Store

__all__ = ["LEAD_BUSINESS_ID", "SECOND_BUSINESS_ID", "SbcConfig", "create_app", "reset"]


def create_app(
    state_dir: Path,
    *,
    config: SbcConfig | None = None,
    faults: FaultInjector | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Starlette:
    """The simulator as an ASGI app; seeds ``state_dir`` on first start. ``clock`` (default
    the system clock) is the simulated server's: codes and tokens expire on it and records
    are stamped with it (tests move or skew it)."""
    config = config or SbcConfig()
    injector = faults or FaultInjector()
    store = Store(Path(state_dir))
    books = Books(store, clock)
    seed(books, config)
    oauth = OAuthServer(store, config, clock)
    api = Api(books, oauth, config)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return error_response(status, [Problem("No route matches this path", "", "RecordNotFound")])

    app = Starlette(
        routes=[
            *oauth.routes(),
            *api.routes(),
            *admin_routes(injector, extra=admin.endpoints(books, oauth, api)),
        ],
        exception_handlers={404: not_found},
    )
    if AUTHORIZE_PATH not in injector.plan.exempt_paths:
        # The consent page is a browser page at Sage, not the API: never fault it.
        injector.replace(
            injector.plan.model_copy(
                update={"exempt_paths": [*injector.plan.exempt_paths, AUTHORIZE_PATH]}
            )
        )
    if conformance.enabled():
        # Inside the fault layer: what is checked is what the simulated Sage answered.
        app.add_middleware(conformance.SchemaCheckMiddleware)
    app.add_middleware(
        FaultMiddleware,
        injector=injector,
        expired_token=lambda: unauthorised("The access token has expired").response(),
        error_body=_server_error,
        rate_limited=_rate_limited,
    )
    app.state.store = store
    app.state.books = books
    app.state.oauth = oauth
    return app


def reset(state_dir: Path) -> None:
    """Forget everything; the next start seeds fresh data."""
    for suffix in ("", "-wal", "-shm"):
        (Path(state_dir) / f"{FILE_NAME}{suffix}").unlink(missing_ok=True)


def _server_error(status: int) -> Response:
    return error_response(
        status, [Problem("The service is temporarily unavailable", "", "ServiceUnavailable")]
    )


def _rate_limited(retry_after: int | None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return error_response(429, [Problem("Too many requests", "", "TooManyRequests")], headers)
