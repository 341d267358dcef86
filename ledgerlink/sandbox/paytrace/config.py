"""Settings of the PayTrace simulator (``ledgerlink sandbox serve paytrace --set key=value``)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ledgerlink.domain.money import Money, MoneyError
from ledgerlink.sandbox.paytrace.settlement import DEFAULT_CARD_FEES, CardFee

_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class PayTraceConfig(BaseModel):
    """What the simulated PayTrace account looks like and how it behaves."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field("ledgerlink-demo", min_length=1, description="API user name.")
    password: str = Field("ledgerlink-demo-pw", min_length=1, description="API password.")
    integrator_id: str = Field(
        "959195xEVBTk",
        min_length=1,
        description="The integrator id issued with the sandbox account (see strict_integrator_id).",
    )
    strict_integrator_id: bool = Field(
        False,
        description="Refuse calls whose integrator_id differs from integrator_id; by default "
        "any non-empty value is accepted (PayTrace uses it to identify the integration, "
        "not to authenticate).",
    )
    token_lifetime_seconds: int = Field(7200, ge=1, le=86_400)
    decline_amounts: list[str] = Field(
        default_factory=lambda: ["0.29"],
        description="Amounts answered with 102 (declined). PayTrace's sandbox declines "
        "$0.29 today ($1.12 was its trigger in 2017).",
    )
    check_decline_amounts: list[str] = Field(
        default_factory=lambda: ["0.29"],
        description="Check (ACH) amounts answered with 125 (not processed).",
    )
    avs_void_amounts: list[str] = Field(
        default_factory=lambda: ["1.03", "103.00"],
        description="Amounts answered with 103 (approved, then voided by AVS/CSC rules).",
    )
    duplicate_window_seconds: int = Field(
        30,
        ge=0,
        le=999 * 60,
        description="Duplicate filter window (PayTrace's Duplicate Transaction Time); a "
        "duplicate is declined (102); 0 turns it off.",
    )
    denied_paths: list[str] = Field(
        default_factory=list,
        description="API paths the API user lacks the permission for: answered with "
        "PayTrace's error 981, 'Log in failed for insufficient permissions.' "
        "(e.g. /v1/transactions/refund/for_transaction).",
    )
    silent_post_url: str | None = Field(
        None, description="Where to POST a silent-post style notification per transaction."
    )
    settle_daily_at: str | None = Field(
        None, description="HH:MM (simulator time zone) to settle the open batch every day."
    )
    timezone: str = Field("UTC", description="IANA zone of the times the API shows.")
    card_fees: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_CARD_FEES),
        description="Processor fee per card brand, percent plus fixed (Visa=1.80%+0.10); "
        "'other' is the rate of brands not named. Written as Visa:1.80%+0.10,Amex:2.9% "
        "with --set. Fees are kept from each batch's deposit (see /_sandbox/deposits).",
    )
    deposit_delay_days: int = Field(
        1, ge=0, le=10, description="Days from a batch's settlement to its bank deposit."
    )
    seed_people: int = Field(240, ge=0, le=100_000)

    @field_validator("decline_amounts", "avs_void_amounts", "check_decline_amounts", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # ``--set decline_amounts=1.12,2.22`` arrives as one string.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("decline_amounts", "avs_void_amounts", "check_decline_amounts")
    @classmethod
    def _amounts(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            try:
                out.append(Money.parse(str(item), "USD").format_plain())
            except MoneyError as exc:
                raise ValueError(f"{item!r}: {exc}") from None
        return out

    @field_validator("card_fees", mode="before")
    @classmethod
    def _fees_text(cls, value: Any) -> Any:
        # ``--set card_fees=Visa:1.80%+0.10,Amex:2.9%`` arrives as one string.
        if isinstance(value, str):
            pairs = [part.partition(":") for part in value.split(",") if part.strip()]
            return {brand.strip(): rate.strip() for brand, _, rate in pairs}
        return value

    @field_validator("card_fees")
    @classmethod
    def _fees(cls, value: dict[str, str]) -> dict[str, str]:
        for brand, rate in value.items():
            CardFee.parse(rate)  # ValueError names the rate and the form to use
            if not brand:
                raise ValueError(f"{rate!r} has no card brand; write Visa:{rate}")
        return value

    @field_validator("denied_paths", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        if isinstance(value, str):  # --set denied_paths=/v1/a,/v1/b
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("settle_daily_at")
    @classmethod
    def _clock(cls, value: str | None) -> str | None:
        if value in (None, "", "none", "null"):
            return None
        if not _CLOCK.match(value):
            raise ValueError("write the time as HH:MM, e.g. 23:30")
        return value

    @field_validator("silent_post_url", mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        return None if value in ("", "none", "null") else value
