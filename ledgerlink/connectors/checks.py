"""`ledgerlink connection test` and the portal's *Test connection*: each check with a
pass/fail and a reason, never an exception."""

from __future__ import annotations

import asyncio

from ledgerlink.connectors import registry
from ledgerlink.connectors.base import CardGateway, CheckResult, Ledger
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.connectors.factory import gateway_for, ledger_for
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection


async def check_connection(runtime: Runtime, connection: Connection) -> list[CheckResult]:
    connector = registry.descriptor(connection.kind)
    if connector.check is not None:
        return await connector.check(runtime, connection)
    adapter: Ledger | CardGateway
    try:
        adapter = (
            gateway_for(runtime, connection)
            if connector.role == "gateway"
            else ledger_for(runtime, connection)
        )
    except UpstreamError as exc:
        return [CheckResult("configuration", False, exc.message)]
    try:
        return await adapter.check()
    except UpstreamError as exc:
        return [CheckResult("reachable", False, exc.message)]
    finally:
        await adapter.aclose()


def run_check(runtime: Runtime, connection: Connection) -> list[CheckResult]:
    return asyncio.run(check_connection(runtime, connection))
