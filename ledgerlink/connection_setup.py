"""Saving a connection, the one use case behind the portal's *Save* and the API's PATCH:
store the settings and secrets (validated), test the connection, and make it active only
when every check passes. A connection is never active on settings nobody has tested."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledgerlink import connections
from ledgerlink.connectors.base import CheckResult
from ledgerlink.connectors.checks import check_connection
from ledgerlink.identity.principal import Principal
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection

#: What the user is told after saving (the portal and the API say the same).
ACTIVE = "Saved and tested: the connection is active."
NOT_ACTIVE = "Saved, but not active: fix the failed checks below and save again."


class NoSuchConnection(LookupError):
    """The connection to save does not exist (any more)."""


@dataclass(frozen=True)
class Saved:
    """The outcome of a save: the connection as stored, and the checks when it was tested."""

    connection: Connection
    tested: bool
    checks: tuple[CheckResult, ...] = ()

    @property
    def active(self) -> bool:
        return self.connection.is_active

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.ok)

    @property
    def message(self) -> str | None:
        """What to tell the user about activation (``None``: it was not asked for)."""
        if not self.tested:
            return None
        return ACTIVE if self.active else NOT_ACTIVE


def _load(runtime: Runtime, connection_id: int) -> Connection:
    with runtime.db.read() as session:
        found = session.get(Connection, connection_id)
        if found is None:
            raise NoSuchConnection(connection_id)
        return found


def _store(
    runtime: Runtime,
    by: Principal,
    connection_id: int,
    settings: Mapping[str, Any] | None,
    secrets: Mapping[str, str] | None,
    deactivate: bool,
) -> bool:
    """Store the change; whether the connection was active before it."""
    with runtime.db.transaction() as session:
        current = session.get(Connection, connection_id)
        if current is None:
            raise NoSuchConnection(connection_id)
        was_active = current.is_active
        connections.update(
            session,
            runtime.vault,
            by,
            current,
            settings=dict(settings) if settings is not None else None,
            secrets=dict(secrets) if secrets else None,
            is_active=False if deactivate else None,
        )
    return was_active


def _settle(runtime: Runtime, by: Principal, connection_id: int, passed: bool) -> Connection:
    """Active exactly when the checks passed."""
    with runtime.db.transaction() as session:
        current = session.get(Connection, connection_id)
        if current is None:
            raise NoSuchConnection(connection_id)
        if current.is_active != passed:
            connections.update(session, runtime.vault, by, current, is_active=passed)
    return _load(runtime, connection_id)


async def save(
    runtime: Runtime,
    by: Principal,
    connection_id: int,
    *,
    settings: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    activate: bool | None = True,
) -> Saved:
    """Store ``settings`` (merged into the current ones) and ``secrets``, then:

    * ``activate=True``: test the connection; it is active exactly when every check passed
      (a failing connection that was active is deactivated, as it would fail its work);
    * ``activate=False``: deactivate it, untested;
    * ``activate=None``: leave activation alone, except that changing the settings or
      secrets of an active connection tests it again as ``True`` does.

    Raises :class:`connections.InvalidConnection` (nothing stored) naming the field, and
    :class:`NoSuchConnection`. Database work runs in a worker thread, never blocking the
    event loop the checks run on.
    """
    was_active = await asyncio.to_thread(
        _store, runtime, by, connection_id, settings, secrets, activate is False
    )
    changed = settings is not None or bool(secrets)
    if activate is False or (activate is None and not (was_active and changed)):
        return Saved(await asyncio.to_thread(_load, runtime, connection_id), tested=False)
    current = await asyncio.to_thread(_load, runtime, connection_id)
    checks = tuple(await check_connection(runtime, current))
    passed = all(c.ok for c in checks)
    settled = await asyncio.to_thread(_settle, runtime, by, connection_id, passed)
    return Saved(settled, tested=True, checks=checks)
