"""What every connector's settings model shares: unknown keys are refused, and the
ledger-side payment-method table members' payments are posted through."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MEMBER_PAYMENT_METHODS = ("card", "bank_transfer", "cash", "cheque", "direct_debit", "ach")


class ConnectorSettings(BaseModel):
    """Base of every kind's settings: a misspelt key is an error, not silently kept."""

    model_config = ConfigDict(extra="forbid")


class PaymentMethodMapping(BaseModel):
    """Where a member-side payment method lands in the ledger."""

    model_config = ConfigDict(extra="forbid")
    payment_method_id: str = Field(max_length=64)
    bank_account_id: str | None = Field(default=None, max_length=64)
