"""The card gateway connections payments can come from or be charged through (the
portal's pickers, the dispute import's check)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.connectors import registry
from ledgerlink.store.models import Connection


def paytrace_connections(session: Session) -> list[Connection]:
    """Every PayTrace connection, by name."""
    return list(
        session.scalars(
            select(Connection)
            .where(Connection.kind.in_(registry.gateway_kinds()))
            .order_by(Connection.name)
        )
    )


def is_paytrace_connection(session: Session, connection_id: int) -> bool:
    connection = session.get(Connection, connection_id)
    return connection is not None and connection.kind in registry.gateway_kinds()
