"""Live records for mapping previews: "run this spec over the N most recent real records".

Registered with the mapping repository when the app starts; each source reads from the
first active connection of its kind (or any, if none is active yet) and never writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import select

from ledgerlink.connectors import registry
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.connectors.factory import gateway_for, ledger_for
from ledgerlink.connectors.paytrace.gateway import PayTraceGateway
from ledgerlink.logs import redact
from ledgerlink.mapping.preview import PreviewSource, SampleSource
from ledgerlink.members.customer_mapping import member_record
from ledgerlink.members.registry import member_from_row
from ledgerlink.opaque import JSONObject
from ledgerlink.payments.preview_records import inbox_records, transaction_records
from ledgerlink.runtime import Runtime
from ledgerlink.store.mapping_repo import PreviewUnavailable, register_recent_source
from ledgerlink.store.member_models import MemberRow, MembershipLevelRow
from ledgerlink.store.models import Connection

LOOKBACK = timedelta(days=31)


def latest_connection(runtime: Runtime, kind: str) -> Connection:
    """The first active connection of ``kind`` (or any, if none is active yet)."""
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


def read_live(
    runtime: Runtime,
    connection: Connection,
    read: Callable[[Any], Awaitable[list[JSONObject]]],
) -> list[JSONObject]:
    """Open the connection's client, run ``read`` with it, close it; any upstream
    failure becomes "no recent records" with the connector's own words."""
    role = registry.descriptor(connection.kind).role
    opener = gateway_for if role == "gateway" else ledger_for
    try:
        client = opener(runtime, connection)
    except UpstreamError as exc:
        raise PreviewUnavailable(exc.message) from None

    async def run() -> list[JSONObject]:
        try:
            return await read(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(run())
    except UpstreamError as exc:
        name = registry.label(connection.kind)
        raise PreviewUnavailable(f"{name} could not be read: {exc.message}") from None


def recent_paytrace_transactions(runtime: Runtime, limit: int) -> PreviewSource:
    """The ``limit`` newest card payments as the payment specs read them when posting
    (``payments/preview_records.py``: exact amounts, no card data): the inbox's, else
    PayTrace's of the last month, read now (a failure is reported before the preview)."""
    with runtime.db.read() as session:
        newest = inbox_records(session, limit)
    if newest:
        return SampleSource(newest, f"the {len(newest)} newest PayTrace transactions in the inbox")
    connection = latest_connection(runtime, "paytrace")
    today = datetime.now(UTC).date()
    currency = str(connection.settings.get("currency") or "USD")

    async def read(gateway: PayTraceGateway) -> list[JSONObject]:
        found = await gateway.transactions(today - LOOKBACK, today)
        return cast(list[JSONObject], transaction_records(found, limit, currency))

    newest = read_live(runtime, connection, read)
    return SampleSource(newest, f"the {len(newest)} most recent transactions of {connection.name}")


def recent_members(runtime: Runtime, limit: int) -> PreviewSource:
    with runtime.db.read() as session:
        rows = session.execute(
            select(MemberRow, MembershipLevelRow.code, MembershipLevelRow.currency)
            .join(MembershipLevelRow, MembershipLevelRow.id == MemberRow.level_id)
            .order_by(MemberRow.updated_at.desc(), MemberRow.id.desc())
            .limit(limit)
        ).all()
    if not rows:
        raise PreviewUnavailable("the member registry is empty; import members first")
    records = [
        member_record(member_from_row(member, code), currency) for member, code, currency in rows
    ]
    return SampleSource(records, f"the {len(records)} most recently changed members")


def recent_paytrace_customers(runtime: Runtime, limit: int) -> PreviewSource:
    connection = latest_connection(runtime, "paytrace")

    async def read(gateway: PayTraceGateway) -> list[JSONObject]:
        body = await gateway._post("/v1/customer/export", {}, idempotent=True)  # raw profiles
        return list(body.get("customers") or [])

    items = read_live(runtime, connection, read)
    newest = [redact(item) for item in items[-limit:]][::-1]
    if not newest:
        raise PreviewUnavailable(f"{connection.name} has no customer profiles")
    return SampleSource(newest, f"the {len(newest)} newest customer profiles of {connection.name}")


def register_all() -> None:
    register_recent_source("paytrace.transaction", recent_paytrace_transactions)
    register_recent_source("paytrace.customer", recent_paytrace_customers)
    register_recent_source("registry.member", recent_members)
    for connector in registry.descriptors():  # a ledger's customers, read its own way
        for record_type, reader in connector.previews.items():
            register_recent_source(record_type, reader)
