"""Which PayTrace connection takes the payments of a ledger's invoices.

Pay links and stored-card charges go through a PayTrace connection and post to the
ledger that connection posts to (``post_to_connection_id``, or the one active ledger when
none is chosen: :class:`ledgerlink.payments.targets.PaymentTargets`). An invoice can be
requested only through a connection that posts back to the invoice's own ledger, or its
payment would be posted elsewhere.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.connectors import registry
from ledgerlink.payments.gateway_connections import paytrace_connections
from ledgerlink.store.models import Connection


def gateway_for_ledger(session: Session, ledger_connection_id: int) -> Connection | None:
    """The PayTrace connection whose payments post to ``ledger_connection_id`` (detached),
    or None when none does."""
    active_ledgers = list(
        session.scalars(
            select(Connection.id).where(
                Connection.kind.in_(registry.ledger_kinds()), Connection.is_active
            )
        )
    )
    for gateway in paytrace_connections(session):
        wanted = (gateway.settings or {}).get("post_to_connection_id")
        posts_to = (
            int(wanted) if wanted else (active_ledgers[0] if len(active_ledgers) == 1 else None)
        )
        if posts_to == ledger_connection_id:
            session.expunge(gateway)
            return gateway
    return None
