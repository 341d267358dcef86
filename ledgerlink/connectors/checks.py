"""`ledgerlink connection test` and the portal's *Test connection*: each check with a
pass/fail and a reason, never an exception.

A test is bounded: one retry at most (a connection test reports what it sees, it does not
wait out an outage the way a sync does) and an overall deadline
(``Settings.connection_test_seconds``), so a hung upstream gives a clear "did not answer
within 15 s" instead of the page waiting a minute and a half."""

from __future__ import annotations

import asyncio

from ledgerlink.connectors import registry
from ledgerlink.connectors.base import CardGateway, CheckResult, Ledger
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.connectors.factory import gateway_for, ledger_for
from ledgerlink.connectors.http import retry_budget
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection

#: Retries one whole connection test may spend (a refused connection is told at once).
TEST_RETRIES = 1


def did_not_answer(kind: str, seconds: float) -> CheckResult:
    """The check that stands for every other when the deadline passed."""
    label = registry.label(kind)
    return CheckResult(
        "reachable",
        False,
        f"{label} did not answer within {seconds:g} s; check that {label} is running and "
        "that this server can reach the address in the settings, then test again",
        unreachable=True,
    )


async def check_connection(runtime: Runtime, connection: Connection) -> list[CheckResult]:
    seconds = runtime.settings.connection_test_seconds
    try:
        async with asyncio.timeout(seconds):
            with retry_budget(TEST_RETRIES):
                return await _checks(runtime, connection)
    except TimeoutError:
        return [did_not_answer(connection.kind, seconds)]


async def _checks(runtime: Runtime, connection: Connection) -> list[CheckResult]:
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
        return [CheckResult.from_error("reachable", exc)]
    finally:
        await adapter.aclose()


def run_check(runtime: Runtime, connection: Connection) -> list[CheckResult]:
    return asyncio.run(check_connection(runtime, connection))
