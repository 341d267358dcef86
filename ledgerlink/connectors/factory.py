"""Build the adapter for a stored connection: the connector registry says which factory
serves its kind (settings from the row, secrets from the vault)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from ledgerlink.connectors import registry
from ledgerlink.connectors.base import CardGateway, Ledger
from ledgerlink.connectors.errors import Misconfigured
from ledgerlink.connectors.sbc.wiring import (
    CALLBACK_PATH,
    sbc_oauth,
    sbc_redirect_uri,
    sbc_token_vault,
)
from ledgerlink.store.models import Connection

if TYPE_CHECKING:
    from ledgerlink.runtime import Runtime

__all__ = [
    "CALLBACK_PATH",
    "gateway_for",
    "ledger_for",
    "sbc_oauth",
    "sbc_redirect_uri",
    "sbc_token_vault",
]


def ledger_for(
    runtime: Runtime, connection: Connection, transport: httpx.AsyncBaseTransport | None = None
) -> Ledger:
    build = registry.descriptor(connection.kind).ledger
    if build is None:
        raise Misconfigured(connection.kind, f"a {connection.kind} connection is not a ledger")
    return build(runtime, connection, transport)


def gateway_for(
    runtime: Runtime, connection: Connection, transport: httpx.AsyncBaseTransport | None = None
) -> CardGateway:
    build = registry.descriptor(connection.kind).gateway
    if build is None:
        raise Misconfigured(connection.kind, f"a {connection.kind} connection is not a gateway")
    return build(runtime, connection, transport)
