"""The settings an e-mail (SMTP) connection keeps (its password is a vault secret)."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import Field, field_validator

from ledgerlink.connectors.settings import ConnectorSettings


class SmtpSettings(ConnectorSettings):
    """Where ledgerlink sends finance its e-mail: the daily digest of reconciled payments
    and the alerts (a critical payment failure at once; too many open exceptions; payments
    waiting too long)."""

    host: str = Field(default="", max_length=255)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = Field(default="", max_length=255)
    from_address: str = Field(default="", max_length=254)
    recipients: list[str] = Field(default_factory=list, max_length=50)
    #: Local time of the daily digest ("07:30"); empty: no digest.
    digest_at: str = Field(default="07:30", pattern=r"^$|^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = Field(default="UTC", max_length=64)
    #: Send an alert at once when a payment fails critically (an outage, a set-up gap).
    alerts: bool = True
    #: Alert when this many exceptions are open (0: never).
    exceptions_threshold: int = Field(default=10, ge=0, le=100_000)
    #: Alert when a payment has waited longer than this to be posted (0: never).
    pending_minutes_threshold: int = Field(default=15, ge=0, le=10_080)

    @field_validator("from_address")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _address(value) if value else value

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, values: list[str]) -> list[str]:
        return [_address(v) for v in values if v.strip()]

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone; use a name like Europe/London"
            ) from None
        return value


def _address(value: str) -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not an e-mail address: {exc}") from None
