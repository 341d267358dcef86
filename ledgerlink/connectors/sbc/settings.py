"""The settings a Sage Business Cloud connection keeps (non-secret; secrets are in the
vault)."""

from __future__ import annotations

from pydantic import Field, HttpUrl, field_validator

from ledgerlink.connectors.settings import (
    MEMBER_PAYMENT_METHODS,
    ConnectorSettings,
    PaymentMethodMapping,
)
from ledgerlink.domain.periods import FinancialYear


class SbcSettings(ConnectorSettings):
    client_id: str = Field(default="", max_length=200)
    business_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    api_base_url: HttpUrl = HttpUrl("https://api.accounting.sage.com/v3.1")
    authorize_url: HttpUrl = HttpUrl("https://www.sageone.com/oauth2/auth/central")
    token_url: HttpUrl = HttpUrl("https://oauth.accounting.sage.com/token")
    #: SBC bank account that card receipts are paid into (e.g. a "Card Clearing" account).
    receipt_bank_account_id: str | None = Field(default=None, max_length=64)
    payment_method_id: str = Field(default="CREDIT_DEBIT", max_length=32)
    #: Client-side limit per business; SBC allows about 100 requests a minute.
    rate_limit_per_minute: int = Field(default=100, ge=0, le=100_000)
    #: Financial years ledgerlink may post into ("2026-01-01..2026-12-31"); empty: any
    #: year after the ledger's lockdown date.
    accounting_periods: list[str] = Field(default_factory=list)
    #: Member-side method (card, bank_transfer, cash, cheque, direct_debit) → ledger.
    payment_methods: dict[str, PaymentMethodMapping] = Field(default_factory=dict)
    membership_fee_ledger_account_id: str | None = Field(default=None, max_length=64)

    @field_validator("accounting_periods")
    @classmethod
    def _periods(cls, keys: list[str]) -> list[str]:
        for key in keys:
            try:
                FinancialYear.from_key(key)
            except ValueError:
                raise ValueError(
                    f"{key!r} is not a financial year; write it as 2026-01-01..2026-12-31"
                ) from None
        return keys

    @field_validator("payment_methods")
    @classmethod
    def _methods(cls, mapping: dict[str, PaymentMethodMapping]) -> dict[str, PaymentMethodMapping]:
        unknown = set(mapping) - set(MEMBER_PAYMENT_METHODS)
        if unknown:
            known = ", ".join(MEMBER_PAYMENT_METHODS)
            raise ValueError(f"unknown payment method(s) {sorted(unknown)}; use {known}")
        return mapping
