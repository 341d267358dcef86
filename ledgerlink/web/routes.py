"""The application's routes, built once per process and shared by every application.

FastAPI (0.16x) includes a router lazily: ``include_router`` records it, and the first
request that reaches it analyses every route's signature and dependencies for *that*
inclusion (pydantic adapters for each parameter). For our routers that is 50 to 80 ms of
CPU per router and application, 0.25 s for a session touching the API and a few portal
pages, paid again by every application a process builds: each test builds its own, with
its own settings. An included router is the same for every application (none of ours
depends on anything the application holds: they reach the runtime through the request),
so the inclusions are made once, here, and every application starts from them.

The one thing an inclusion takes from its parent is where dependency overrides are looked
up; the routes here have none, so ``app.dependency_overrides`` does not apply to them
(``web/app.py`` makes the mapping read-only so that nobody relies on it by mistake).
"""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter
from starlette.routing import BaseRoute

from ledgerlink.web import capture_pages, health, inbound, pay_pages
from ledgerlink.web.api import router as api_router
from ledgerlink.web.portal import router as portal_router


@cache
def application_routes() -> tuple[BaseRoute, ...]:
    """Every route of the application, in matching order (the first that matches wins)."""
    routes = APIRouter()
    routes.include_router(health.router)
    routes.include_router(inbound.router)
    routes.include_router(api_router, prefix="/api/v1")
    routes.include_router(portal_router)
    routes.include_router(pay_pages.router)  # the payer's pages: the signed link is the key
    routes.include_router(capture_pages.router)  # the payer's card-on-file pages, the same way
    return tuple(routes.routes)
