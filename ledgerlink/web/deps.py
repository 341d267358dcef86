"""What a route may ask for, as ``Annotated`` aliases: the runtime (the composition root),
the database, a read or a write session, the signed-in principal with its role, and the
few long-lived helpers the web layer keeps (the customer index cache, the inbound state).

Routes declare these as parameters instead of reaching into ``request.app.state``, so a
route's signature says everything it depends on. Only this module and ``web/app.py``
(which sets the state up) touch ``app.state``; a test builds an application with the
settings it needs (cheap: the routes are built once per process, ``web/routes.py``).

Session dependencies are plain ``def`` generators with ``scope="function"``: FastAPI runs
them, and the ``def`` routes that use them, in its thread pool, so database work never
blocks the event loop; and a write session commits (or rolls back) when the route
returns, *before* the response is sent, so a client never reads an answer whose changes
were not committed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ledgerlink.connectors.base import Ledger
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.identity.principal import Principal
from ledgerlink.identity.roles import Role
from ledgerlink.members import linking
from ledgerlink.payments import inbox
from ledgerlink.payments.jobs import request_processing
from ledgerlink.runtime import Runtime
from ledgerlink.store.db import Database
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.models import Connection
from ledgerlink.web.inbound_limits import InboundLimits
from ledgerlink.web.problems import Problem
from ledgerlink.web.security import NotSignedIn, authenticate, refuse_role


def get_runtime(request: Request) -> Runtime:
    """The application's runtime, set once by ``create_app``."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_database(runtime: RuntimeDep) -> Database:
    return runtime.db


DatabaseDep = Annotated[Database, Depends(get_database)]


# ---- who is calling ------------------------------------------------------------------------


def current_principal(request: Request, db: DatabaseDep) -> Principal | None:
    """The caller (session cookie or bearer token), or None when anonymous; resolved once
    per request and kept on ``request.state`` for the portal's navigation."""
    if hasattr(request.state, "principal"):
        known: Principal | None = request.state.principal
        return known
    principal = authenticate(request, db)
    request.state.principal = principal
    return principal


MaybePrincipal = Annotated[Principal | None, Depends(current_principal)]


def read_session(db: DatabaseDep) -> Iterator[Session]:
    """A session for reading only; nothing it does is committed."""
    with db.read() as session:
        yield session


def write_session(db: DatabaseDep, _caller: MaybePrincipal) -> Iterator[Session]:
    """A unit of work: committed when the route returns, rolled back if it raises.

    It depends on the caller so that signing in (which may write: a token's last use, a
    session's expiry) is done before this transaction takes SQLite's write lock, whatever
    order the route lists its parameters in; otherwise the request would wait on itself.

    A route that turns a refusal into a normal answer (a form shown again with its error)
    must not catch it inside a write session, or what was done before the refusal would
    be committed: such routes use ``DatabaseDep`` and their own ``db.transaction()``.
    """
    with db.transaction() as session:
        yield session


ReadSession = Annotated[Session, Depends(read_session, scope="function")]
WriteSession = Annotated[Session, Depends(write_session, scope="function")]


def get_mappings(runtime: RuntimeDep) -> MappingRepository:
    """The installation's mapping specs (the configuration directory's included)."""
    return runtime.mappings


MappingsDep = Annotated[MappingRepository, Depends(get_mappings)]


def require(role: Role) -> Callable[[Principal | None], Principal]:
    """Dependency: the caller must be signed in with at least ``role``."""

    def dependency(principal: MaybePrincipal) -> Principal:
        if principal is None:
            raise NotSignedIn()
        refuse_role(principal, role)
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency


viewer = require(Role.VIEWER)
operator = require(Role.OPERATOR)
admin = require(Role.ADMIN)

#: The signed-in caller, with at least the named role (403 otherwise; 401 when signed out).
Viewer = Annotated[Principal, Depends(viewer)]
Operator = Annotated[Principal, Depends(operator)]
Admin = Annotated[Principal, Depends(admin)]


# ---- long-lived helpers of the web process -----------------------------------------------


def get_customer_index_cache(request: Request) -> linking.CustomerIndexCache:
    """Ledger customer indexes shared by the requests of this process (a few minutes)."""
    state = request.app.state
    cache: linking.CustomerIndexCache | None = getattr(state, "customer_index_cache", None)
    if cache is None:
        cache = state.customer_index_cache = linking.CustomerIndexCache()
    return cache


CustomerIndexDep = Annotated[linking.CustomerIndexCache, Depends(get_customer_index_cache)]


def get_embedded_runner(request: Request) -> Any:
    """The embedded job runner started with the app, or None (procrastinate, or off)."""
    return getattr(request.app.state, "embedded_runner", None)


EmbeddedRunnerDep = Annotated[Any, Depends(get_embedded_runner)]


#: How long the inbound routes remember a PayTrace connection (a burst would otherwise
#: read it once per event).
KNOWN_CONNECTION_TTL = 10.0


@dataclass
class InboundState:
    """What the inbound push routes keep between requests: the rate limits, the inbox's
    group-commit writer and the PayTrace connections seen in the last few seconds."""

    runtime: Runtime
    limits: InboundLimits
    writer: inbox.InboxWriter
    known: dict[int, tuple[float, Connection]] = field(default_factory=dict)

    def remembered(self, connection_id: int) -> Connection | None:
        cached = self.known.get(connection_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def remember(self, connection: Connection) -> None:
        self.known[connection.id] = (time.monotonic() + KNOWN_CONNECTION_TTL, connection)


def inbound_state(request: Request) -> InboundState:
    """The inbound state of this app, made on first use. A plain function of the request
    (not only a dependency) because the inbound fast path calls its routes directly."""
    state = request.app.state
    found: InboundState | None = getattr(state, "inbound", None)
    if found is None:
        runtime = get_runtime(request)
        jobs = runtime.jobs
        found = state.inbound = InboundState(
            runtime=runtime,
            limits=InboundLimits(
                runtime.settings.inbound_limit_per_address,
                runtime.settings.inbound_limit_per_connection,
            ),
            writer=inbox.InboxWriter(
                runtime.db, on_new=lambda session: request_processing(jobs, session)
            ),
        )
    return found


# ---- a ledger for one request --------------------------------------------------------------


@asynccontextmanager
async def open_ledger(runtime: Runtime, connection_id: int) -> AsyncIterator[Ledger]:
    """The ledger adapter of a stored ledger connection, closed afterwards. The connection
    is read in the thread pool; a connection that cannot make an adapter (missing
    settings or secrets) is a 409 naming the system, a missing one a link error."""

    def read() -> Connection:
        with runtime.db.read() as session:
            return linking.ledger_connection(session, connection_id)

    connection = await run_in_threadpool(read)
    try:
        ledger = runtime.ledger_for(connection)
    except UpstreamError as exc:
        raise Problem(
            409, "Connection not ready", f"{exc.system_name}: {exc.message}", kind="connection"
        ) from None
    try:
        yield ledger
    finally:
        await ledger.aclose()
