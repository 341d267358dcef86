"""What a route may ask for, as ``Annotated`` aliases: the runtime (the composition root),
the database, a read or a write session, and the signed-in principal with its role.

Routes declare these as parameters instead of reaching into ``request.app.state``, so a
route's signature says everything it depends on and tests can override one dependency
(``app.dependency_overrides``) instead of building a whole application. Session
dependencies are plain ``def`` generators: FastAPI runs them, and the ``def`` routes that
use them, in its thread pool, so database work never blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.runtime import Runtime
from ledgerlink.store.db import Database
from ledgerlink.web.security import admin, operator, viewer


def get_runtime(request: Request) -> Runtime:
    """The application's runtime, set once by ``create_app``."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_database(runtime: RuntimeDep) -> Database:
    return runtime.db


DatabaseDep = Annotated[Database, Depends(get_database)]


def read_session(db: DatabaseDep) -> Iterator[Session]:
    """A session for reading only; nothing it does is committed."""
    with db.read() as session:
        yield session


def write_session(db: DatabaseDep) -> Iterator[Session]:
    """A unit of work: committed when the route returns, rolled back if it raises."""
    with db.transaction() as session:
        yield session


ReadSession = Annotated[Session, Depends(read_session)]
WriteSession = Annotated[Session, Depends(write_session)]

#: The signed-in caller, with at least the named role (403 otherwise; 401 when signed out).
Viewer = Annotated[Principal, Depends(viewer)]
Operator = Annotated[Principal, Depends(operator)]
Admin = Annotated[Principal, Depends(admin)]
