"""The settings a PayTrace connection keeps (non-secret; secrets are in the vault)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl

from ledgerlink.connectors.settings import ConnectorSettings


class PayTraceSettings(ConnectorSettings):
    username: str = Field(default="", max_length=200)
    integrator_id: str = Field(default="", max_length=100)
    environment: Literal["sandbox", "production"] = "sandbox"
    api_base_url: HttpUrl = HttpUrl("https://api.sandbox.paytrace.com")
    #: The ledger connection (SBC or Sage 500) card payments are posted to; empty: the
    #: only active ledger connection.
    post_to_connection_id: int | None = Field(default=None, ge=1)
    #: What happens to the part of a payment above the invoice's open balance.
    overpayment: Literal["on_account", "exception"] = "on_account"
    #: Poll PayTrace's exports (and settlement batches) for payments no push delivered.
    polling: bool = True
    #: Polls are checked every ten seconds, so shorter intervals are not offered.
    poll_interval_seconds: int = Field(default=60, ge=10, le=86_400)
    #: Re-read this far back each poll, so a transaction PayTrace files late is still seen.
    poll_overlap_minutes: int = Field(default=15, ge=0, le=7 * 24 * 60)
