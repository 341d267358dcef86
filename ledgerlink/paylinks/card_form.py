"""What the payer's page needs to draw PayTrace's hosted card fields: a fresh client key
from the link's PayTrace connection, the address of PayTrace's script and its origin (which
the page's Content-Security-Policy allows)."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.connectors.paytrace.protect import PayTraceProtect
from ledgerlink.connectors.paytrace.wiring import paytrace_gateway
from ledgerlink.paylinks.links import LinkUnusable
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection

log = structlog.get_logger("ledgerlink.paylinks")


@dataclass(frozen=True)
class CardForm:
    client_key: str
    script_url: str
    origin: str


async def card_form(runtime: Runtime, gateway_connection_id: int) -> CardForm:
    """A client key for the page (PayTrace's keys last 15 minutes, so one per page);
    :class:`LinkUnusable` when PayTrace cannot give one now."""
    connection = await reading(
        runtime.db, lambda session: _detached(session, gateway_connection_id)
    )
    if connection is None:
        raise LinkUnusable("unavailable", "Card payments are not set up; nothing was charged.")
    gateway = paytrace_gateway(runtime, connection)
    protect = PayTraceProtect(gateway)
    try:
        key = await protect.client_key()
    except UpstreamError as exc:
        log.warning("paylink.client_key_failed", error=exc.message)
        raise LinkUnusable(
            "unavailable",
            "The card form cannot be shown just now. Try again in a few minutes; nothing was "
            "charged.",
        ) from None
    finally:
        await gateway.aclose()
    return CardForm(key, protect.script_url, protect.origin)


def _detached(session: Session, connection_id: int) -> Connection | None:
    connection = session.get(Connection, connection_id)
    if connection is not None:
        session.expunge(connection)
    return connection
