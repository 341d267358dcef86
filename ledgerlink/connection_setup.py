"""Saving a connection, the one use case behind the portal's *Save* and the API's PATCH:
store the settings and secrets (validated), test the connection, and make it active only
when every check passes. A connection is never made active on settings nobody has tested.

Saving never loses configuration: what was sent is stored before anything is tested. When
the system cannot be reached (down, hung, rate limiting) the test learned nothing about
the settings, so they are "saved, not verified" and the connection keeps the state its last
verified test gave it: an outage at Sage does not switch off posting that worked."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledgerlink import connections
from ledgerlink.connectors import registry
from ledgerlink.connectors.base import CheckResult
from ledgerlink.connectors.checks import check_connection
from ledgerlink.identity.principal import Principal
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection

#: What the user is told after saving (the portal and the API say the same).
ACTIVE = "Saved and tested: the connection is active."
NOT_ACTIVE = "Saved, but not active: fix the failed checks below and save again."
NOT_VERIFIED = (
    "Saved, but not verified: {system} could not be reached, so the settings were not "
    "tested (the reason is below). {state} Test the connection again once {system} answers."
)
KEPT_ACTIVE = "The connection stays active, as its last successful test left it."
KEPT_INACTIVE = "The connection stays inactive until a test passes."


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
    def verified(self) -> bool:
        """Whether the test reached the system: every check passed, or one failed on an
        answer (a refused password, a missing business) rather than on silence."""
        return self.tested and not _unverified(self.checks)

    @property
    def message(self) -> str | None:
        """What to tell the user about activation (``None``: it was not asked for)."""
        if not self.tested:
            return None
        if not self.verified:
            return NOT_VERIFIED.format(
                system=registry.label(self.connection.kind),
                state=KEPT_ACTIVE if self.active else KEPT_INACTIVE,
            )
        return ACTIVE if self.active else NOT_ACTIVE


def _unverified(checks: tuple[CheckResult, ...]) -> bool:
    """Failed only because the system did not answer (nothing was learned)."""
    failed = [c for c in checks if not c.ok]
    return bool(failed) and all(c.unreachable for c in failed)


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


def _settle(runtime: Runtime, by: Principal, connection_id: int, active: bool) -> Connection:
    """Make the connection ``active`` or not (audited only when that changes)."""
    with runtime.db.transaction() as session:
        current = session.get(Connection, connection_id)
        if current is None:
            raise NoSuchConnection(connection_id)
        if current.is_active != active:
            connections.update(session, runtime.vault, by, current, is_active=active)
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

    * ``activate=True``: test the connection; it is active when every check passed, and
      inactive when one failed on the system's answer (a failing connection that was
      active is deactivated, as it would fail its work); when the system could not be
      reached it keeps the state it had (saved, not verified: see :attr:`Saved.verified`);
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
    active = was_active if _unverified(checks) else all(c.ok for c in checks)
    settled = await asyncio.to_thread(_settle, runtime, by, connection_id, active)
    return Saved(settled, tested=True, checks=checks)
