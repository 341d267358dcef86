"""The settings a Sage 500 connection keeps (non-secret; its database URL is a vault
secret)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ledgerlink.connectors.settings import ConnectorSettings, PaymentMethodMapping


class Sage500Settings(ConnectorSettings):
    mode: Literal["sql", "flat_file"] = "sql"
    company_id: str = Field(default="", max_length=3)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    #: Flat-file mode: where ledgerlink drops import files and where the ERP answers.
    drop_folder: str | None = None
    results_folder: str | None = None
    #: GL cash accounts receipts and refunds post to (tglAccount.GLAcctNo).
    receipt_gl_account: str | None = Field(default=None, max_length=100)
    refund_gl_account: str | None = Field(default=None, max_length=100)
    #: How long a write waits for the ERP's import before reporting it as still pending.
    import_wait_seconds: float = Field(default=60.0, gt=0, le=3600)
    #: ACH payments (PayTrace checks): ``{"ach": {"payment_method_id", "bank_account_id"}}``,
    #: ``bank_account_id`` being the GL cash account ACH receipts post to (blank: the payment
    #: spec's ACH account). No entry: the default (``ACH``, the spec's account).
    payment_methods: dict[Literal["ach"], PaymentMethodMapping] = Field(default_factory=dict)
