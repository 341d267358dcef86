"""Live records for mapping previews: "run this spec over the N most recent real records".

Registered with the mapping repository when the app starts; each source reads from the
first active connection of its kind (or any, if none is active yet) and never writes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.connectors.factory import gateway_for
from ledgerlink.connectors.paytrace.gateway import PayTraceGateway
from ledgerlink.logs import redact
from ledgerlink.mapping.preview import PreviewSource, SampleSource
from ledgerlink.runtime import Runtime
from ledgerlink.store.mapping_repo import PreviewUnavailable, register_recent_source
from ledgerlink.store.models import Connection

LOOKBACK = timedelta(days=31)


def _connection(runtime: Runtime, kind: str) -> Connection:
    with runtime.db.read() as session:
        rows = session.scalars(
            select(Connection)
            .where(Connection.kind == kind)
            .order_by(Connection.is_active.desc(), Connection.id)
        ).all()
    if not rows:
        raise PreviewUnavailable(
            f"there is no {kind} connection to read recent records from; add one under "
            "Accounting Integration, or upload sample records"
        )
    return rows[0]


def recent_paytrace_transactions(runtime: Runtime, limit: int) -> PreviewSource:
    """The ``limit`` newest transactions of the last month, read now (so a failure is
    reported as "no recent records" before the preview starts)."""
    connection = _connection(runtime, "paytrace")
    try:
        gateway = gateway_for(runtime, connection)
    except UpstreamError as exc:
        raise PreviewUnavailable(exc.message) from None
    assert isinstance(gateway, PayTraceGateway)
    today = datetime.now(UTC).date()

    async def fetch() -> list[dict[str, Any]]:
        try:
            return await gateway.export_raw(today - LOOKBACK, today)
        finally:
            await gateway.aclose()

    try:
        items = asyncio.run(fetch())
    except UpstreamError as exc:
        raise PreviewUnavailable(f"PayTrace could not be read: {exc.message}") from None
    items.sort(key=lambda item: int(item.get("transaction_id") or 0), reverse=True)
    newest = [redact(item) for item in items[:limit]]
    return SampleSource(newest, f"the {len(newest)} most recent transactions of {connection.name}")


def register_all() -> None:
    register_recent_source("paytrace.transaction", recent_paytrace_transactions)
