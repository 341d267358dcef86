"""Settings of the SBC simulator (``ledgerlink sandbox serve sbc --set key=value``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SbcConfig(BaseModel):
    """What the simulated Sage account looks like and how strict it is."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(
        "ledgerlink-sandbox-client", min_length=1, description="OAuth client id of the app."
    )
    client_secret: str = Field(
        "ledgerlink-sandbox-secret", min_length=1, description="OAuth client secret of the app."
    )
    redirect_uris: list[str] = Field(
        default_factory=list,
        description="Registered callback URLs; empty accepts any http(s) callback (sandbox "
        "convenience: the real app registration lists them).",
    )
    auto_approve: bool = Field(
        False, description="Skip the consent page and approve at once (tests, scripted demos)."
    )
    token_lifetime_seconds: int = Field(300, ge=1, le=86_400, description="Access tokens.")
    refresh_token_lifetime_seconds: int = Field(
        31 * 86_400, ge=1, le=366 * 86_400, description="Refresh tokens (31 days at Sage)."
    )
    code_lifetime_seconds: int = Field(60, ge=1, le=3600, description="Authorization codes.")
    rate_limit_per_minute: int = Field(
        100, ge=0, le=1_000_000, description="Requests per minute per business; 0 turns it off."
    )
    daily_request_cap: int = Field(
        0, ge=0, le=10_000_000, description="Requests per day per business; 0 turns it off."
    )
    rate_limit_retry_after: bool = Field(
        True,
        description="Send Retry-After with the limiter's 429s (Sage does not promise it; turn "
        "it off to check that a client copes without).",
    )
    seed_people: int = Field(240, ge=0, le=100_000, description="Demo population size.")

    @field_validator("redirect_uris", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # ``--set redirect_uris=http://a/cb,http://b/cb`` arrives as one string.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
