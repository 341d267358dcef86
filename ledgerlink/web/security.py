"""Authentication and authorisation for every route.

A request is authenticated by a portal session cookie or by ``Authorization: Bearer
llk_…``. Each route states the least role it needs with ``web/deps.py``'s ``Viewer``,
``Operator`` or ``Admin``;
the route-walk test proves that nothing outside ``PUBLIC_PATHS`` answers anonymously and
that a viewer can change nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ledgerlink.identity import login
from ledgerlink.identity.principal import Principal
from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database
from ledgerlink.web.problems import Problem

SESSION_COOKIE = "ll_session"

#: Routes anyone may call. Keep this list short and obvious.
#: ``/inbound`` is authenticated by each delivery itself (signature, or read-back);
#: ``/pay`` and ``/card`` by the signed, expiring pay or card link in their path (a payer
#: is not a user).
PUBLIC_PATHS = frozenset({"/login", "/healthz", "/readyz", "/static", "/inbound", "/pay", "/card"})


class NotSignedIn(Exception):
    """Raised for anonymous requests; the portal redirects to /login, the API answers 401."""


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    return None


def authenticate(request: Request, db: Database) -> Principal | None:
    """The caller of a request (bearer API token or portal session cookie), or None."""
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
    return principal


def refuse_role(principal: Principal, role: Role) -> None:
    """A 403 naming the role needed, unless the principal has at least ``role``."""
    if not principal.can(role):
        raise Problem(
            403,
            "Forbidden",
            f"This needs the {role.value} role; you are signed in as "
            f"{principal.role.value}. Ask an administrator if you need it.",
        )


#: The role dependencies live in ``web/deps.py`` (they need the runtime's database).
_MOVED_TO_DEPS = frozenset({"viewer", "operator", "admin", "require"})


def __getattr__(name: str) -> Any:
    """``from ledgerlink.web.security import viewer`` keeps working for modules not yet
    moved to ``web/deps.py``'s aliases."""
    if name in _MOVED_TO_DEPS:
        # deps imports this module (NotSignedIn, authenticate): a real cycle
        from ledgerlink.web import deps

        return getattr(deps, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
