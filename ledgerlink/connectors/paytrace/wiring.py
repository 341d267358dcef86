"""Builds the PayTrace gateway for a stored connection (its password from the vault)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from ledgerlink import connections
from ledgerlink.connectors.errors import Misconfigured
from ledgerlink.connectors.paytrace.gateway import PayTraceGateway, PayTraceOptions
from ledgerlink.store.models import Connection

if TYPE_CHECKING:
    from ledgerlink.runtime import Runtime


def paytrace_gateway(
    runtime: Runtime, connection: Connection, transport: httpx.AsyncBaseTransport | None = None
) -> PayTraceGateway:
    settings = connection.settings
    password = connections.read_secret(runtime.vault, connection, "password")
    if not settings.get("username") or not password:
        raise Misconfigured("paytrace", "Enter the PayTrace API username and password first")
    return PayTraceGateway(
        PayTraceOptions(
            api_base_url=settings["api_base_url"],
            username=settings["username"],
            password=password,
            integrator_id=settings.get("integrator_id", ""),
        ),
        transport=transport,
    )
