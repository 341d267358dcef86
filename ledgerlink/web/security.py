"""Authentication and authorisation for every route.

A request is authenticated by a portal session cookie or by ``Authorization: Bearer
llk_…``. Each route states the least role it needs with ``Depends(require(Role.X))``;
the route-walk test proves that nothing outside ``PUBLIC_PATHS`` answers anonymously and
that a viewer can change nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from ledgerlink.identity import login
from ledgerlink.identity.principal import Principal
from ledgerlink.identity.roles import Role
from ledgerlink.web.problems import Problem

SESSION_COOKIE = "ll_session"

#: Routes anyone may call. Keep this list short and obvious.
#: ``/inbound`` is authenticated by each delivery itself (signature, or read-back).
PUBLIC_PATHS = frozenset({"/login", "/healthz", "/readyz", "/static", "/inbound"})


class NotSignedIn(Exception):
    """Raised for anonymous requests; the portal redirects to /login, the API answers 401."""


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    return None


def authenticate_request(request: Request) -> Principal | None:
    """Resolve the caller once per request and cache it on ``request.state``."""
    if hasattr(request.state, "principal"):
        return request.state.principal  # type: ignore[no-any-return]
    db = request.app.state.db
    principal: Principal | None = None
    token = _bearer(request)
    stale = False
    with db.read() as session:
        if token:
            principal, stale = login.resolve_api_token(session, token)
        elif cookie := request.cookies.get(SESSION_COOKIE):
            principal = login.resolve_session(session, cookie)
    if token and stale:
        with db.transaction() as session:
            login.note_api_token_use(session, token)
    request.state.principal = principal
    return principal


def require(role: Role) -> Callable[[Request], Principal]:
    """Dependency: the caller must be signed in with at least ``role``."""

    def dependency(request: Request) -> Principal:
        principal = authenticate_request(request)
        if principal is None:
            raise NotSignedIn()
        if not principal.can(role):
            raise Problem(
                403,
                "Forbidden",
                f"This needs the {role.value} role; you are signed in as "
                f"{principal.role.value}. Ask an administrator if you need it.",
            )
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency


viewer = require(Role.VIEWER)
operator = require(Role.OPERATOR)
admin = require(Role.ADMIN)
