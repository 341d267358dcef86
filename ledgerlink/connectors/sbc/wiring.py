"""Builds a Sage Business Cloud ledger for a stored connection: its settings from the
row, its client secret and tokens from the vault, its consent callback address."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from ledgerlink import connections
from ledgerlink.connectors.errors import Misconfigured
from ledgerlink.connectors.sbc.ledger import SbcLedger, SbcOptions
from ledgerlink.connectors.sbc.oauth import SbcAuth, SbcOAuth, TokenVault
from ledgerlink.store.models import Connection

if TYPE_CHECKING:
    from ledgerlink.runtime import Runtime

CALLBACK_PATH = "/connections/sbc/callback"


def sbc_redirect_uri(runtime: Runtime, request_base_url: str | None = None) -> str:
    """Where SBC sends the browser back after consent (must match the app registration)."""
    base = (
        runtime.settings.base_url
        or request_base_url
        or (f"http://{runtime.settings.host}:{runtime.settings.port}")
    )
    return base.rstrip("/") + CALLBACK_PATH


def sbc_oauth(
    runtime: Runtime,
    connection: Connection,
    *,
    request_base_url: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> SbcOAuth:
    settings = connection.settings
    secret = connections.read_secret(runtime.vault, connection, "client_secret")
    if not settings.get("client_id") or not secret:
        raise Misconfigured(
            "sbc",
            "Enter the Sage client id and client secret first "
            "(Accounting Integration → Sage Business Cloud)",
        )
    return SbcOAuth(
        client_id=settings["client_id"],
        client_secret=secret,
        authorize_url=settings["authorize_url"],
        token_url=settings["token_url"],
        redirect_uri=sbc_redirect_uri(runtime, request_base_url),
        transport=transport,
    )


def sbc_token_vault(runtime: Runtime, connection: Connection, **kwargs: Any) -> TokenVault:
    return TokenVault(
        runtime.db, runtime.vault, connection.id, sbc_oauth(runtime, connection, **kwargs)
    )


def sbc_ledger(
    runtime: Runtime, connection: Connection, transport: httpx.AsyncBaseTransport | None = None
) -> SbcLedger:
    settings = connection.settings
    options = SbcOptions(
        api_base_url=settings["api_base_url"],
        business_id=settings.get("business_id"),
        receipt_bank_account_id=settings.get("receipt_bank_account_id"),
        payment_method_id=settings.get("payment_method_id") or "CREDIT_DEBIT",
        rate_limit_per_minute=int(settings.get("rate_limit_per_minute", 100)),
    )
    return SbcLedger(options, SbcAuth(sbc_token_vault(runtime, connection)), transport=transport)
