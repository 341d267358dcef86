"""Live records for mapping previews: "run this spec over the N most recent real records".

Registered with the mapping repository when the app starts; each source reads from the
first active connection of its kind (or any, if none is active yet) and never writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.exc import DBAPIError

from ledgerlink import connections
from ledgerlink.connectors import registry
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.connectors.factory import gateway_for, ledger_for
from ledgerlink.connectors.paytrace.gateway import PayTraceGateway
from ledgerlink.connectors.sage500.tables import tarCustomer, tciAddress, tciContact, tsmCompany
from ledgerlink.connectors.sbc.ledger import SbcLedger
from ledgerlink.logs import redact
from ledgerlink.mapping.preview import PreviewSource, SampleSource
from ledgerlink.members.customer_mapping import member_record
from ledgerlink.members.registry import member_from_row
from ledgerlink.runtime import Runtime
from ledgerlink.store.mapping_repo import PreviewUnavailable, register_recent_source
from ledgerlink.store.member_models import MemberRow, MembershipLevelRow
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


def _read_live(
    runtime: Runtime,
    connection: Connection,
    read: Callable[[Any], Awaitable[list[dict[str, Any]]]],
) -> list[dict[str, Any]]:
    """Open the connection's client, run ``read`` with it, close it; any upstream
    failure becomes "no recent records" with the connector's own words."""
    role = registry.descriptor(connection.kind).role
    opener = gateway_for if role == "gateway" else ledger_for
    try:
        client = opener(runtime, connection)
    except UpstreamError as exc:
        raise PreviewUnavailable(exc.message) from None

    async def run() -> list[dict[str, Any]]:
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
    """The ``limit`` newest transactions of the last month, read now (so a failure is
    reported as "no recent records" before the preview starts)."""
    connection = _connection(runtime, "paytrace")
    today = datetime.now(UTC).date()

    async def read(gateway: PayTraceGateway) -> list[dict[str, Any]]:
        return await gateway.export_raw(today - LOOKBACK, today)

    items = _read_live(runtime, connection, read)
    items.sort(key=lambda item: int(item.get("transaction_id") or 0), reverse=True)
    newest = [redact(item) for item in items[:limit]]
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


def recent_sbc_contacts(runtime: Runtime, limit: int) -> PreviewSource:
    connection = _connection(runtime, "sbc")

    async def read(ledger: SbcLedger) -> list[dict[str, Any]]:
        query = {"sort": "updated_at:desc", "items_per_page": min(limit, 200), "attributes": "all"}
        body = await ledger._get("/contacts", query, what="contacts")  # one page is enough
        return list(body.get("$items") or [])

    items = _read_live(runtime, connection, read)
    if not items:
        raise PreviewUnavailable(f"{connection.name} has no contacts yet")
    return SampleSource(
        items[:limit],
        f"the {len(items[:limit])} most recently changed contacts of {connection.name}",
    )


def recent_sage500_customers(runtime: Runtime, limit: int) -> PreviewSource:
    connection = _connection(runtime, "sage500")
    url = connections.read_secret(runtime.vault, connection, "database_url")
    if not url:
        raise PreviewUnavailable(f"{connection.name} has no database URL yet")
    company = connection.settings.get("company_id") or ""
    query = (
        select(
            tarCustomer.c.CustKey,
            tarCustomer.c.CustID,
            tarCustomer.c.CustName,
            tarCustomer.c.Status,
            tarCustomer.c.UpdateDate,
            tciAddress.c.AddrLine1,
            tciAddress.c.AddrLine2,
            tciAddress.c.City,
            tciAddress.c.StateID,
            tciAddress.c.PostalCode,
            tciAddress.c.CountryID,
            tciContact.c.Name.label("ContactName"),
            tciContact.c.EMailAddr,
            tciContact.c.Phone,
            tsmCompany.c.CurrID,
        )
        .select_from(tarCustomer)
        .outerjoin(tciAddress, tciAddress.c.AddrKey == tarCustomer.c.DfltBillToAddrKey)
        .outerjoin(tciContact, tciContact.c.CntctKey == tarCustomer.c.PrimaryCntctKey)
        .outerjoin(tsmCompany, tsmCompany.c.CompanyID == tarCustomer.c.CompanyID)
        .where(tarCustomer.c.CompanyID == company)
        .order_by(tarCustomer.c.UpdateDate.desc(), tarCustomer.c.CustKey.desc())
        .limit(limit)
    )
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
    except DBAPIError as exc:
        raise PreviewUnavailable(
            f"Sage 500 could not be read: {str(exc.orig).splitlines()[0]}"
        ) from None
    finally:
        engine.dispose()
    for row in rows:
        row["CustClassID"] = None
        for key, value in row.items():
            if isinstance(value, datetime):
                row[key] = value.isoformat()
            elif isinstance(value, str):
                row[key] = value.strip()
    if not rows:
        raise PreviewUnavailable(f"{connection.name} has no customers in company {company!r}")
    return SampleSource(
        rows, f"the {len(rows)} most recently changed customers of {connection.name}"
    )


def recent_paytrace_customers(runtime: Runtime, limit: int) -> PreviewSource:
    connection = _connection(runtime, "paytrace")

    async def read(gateway: PayTraceGateway) -> list[dict[str, Any]]:
        body = await gateway._post("/v1/customer/export", {}, idempotent=True)  # raw profiles
        return list(body.get("customers") or [])

    items = _read_live(runtime, connection, read)
    newest = [redact(item) for item in items[-limit:]][::-1]
    if not newest:
        raise PreviewUnavailable(f"{connection.name} has no customer profiles")
    return SampleSource(newest, f"the {len(newest)} newest customer profiles of {connection.name}")


def register_all() -> None:
    register_recent_source("paytrace.transaction", recent_paytrace_transactions)
    register_recent_source("paytrace.customer", recent_paytrace_customers)
    register_recent_source("registry.member", recent_members)
    register_recent_source("sbc.contact", recent_sbc_contacts)
    register_recent_source("sage500.customer", recent_sage500_customers)
