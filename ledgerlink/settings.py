"""Configuration: environment variables ``LEDGERLINK_*`` over an optional ``ledgerlink.toml``.

Everything has a default that runs the embedded product (SQLite under ``./var/``), so a
fresh checkout needs no configuration at all. Production overrides the database URL and
keeps the vault key outside the data directory.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ledgerlink.web.inbound_limits import check_limit

JobBackend = Literal["embedded", "procrastinate"]


class Settings(BaseSettings):
    """All of ledgerlink's settings; field names map to ``LEDGERLINK_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINK_",
        toml_file="ledgerlink.toml",
        extra="forbid",
    )

    var_dir: Path = Field(default=Path("var"), description="Where data, keys and logs live.")
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means SQLite at <var_dir>/ledgerlink.db. "
        "Use postgresql+psycopg://… for the scale-out set-up.",
    )
    vault_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys, newest first. When unset, keys live in "
        "<var_dir>/vault.key (created with mode 0600 on first use).",
    )
    vault_key_file: Path | None = Field(default=None, description="Overrides <var_dir>/vault.key.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    base_url: str = Field(default="", description="Public URL of the portal, for links in e-mail.")
    secure_cookies: bool = Field(
        default=False,
        description="Mark cookies Secure even on plain HTTP (they always are on requests that "
        "came over HTTPS, directly or through a trusted proxy).",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or networks (CIDR) of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto headers are believed. Empty: none are, and the "
        "client address is always the connecting peer's.",
    )
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Wrong passwords for one account from one address before each further "
        "failure doubles the wait before the next attempt (from 1 second).",
    )
    login_failures_per_address: int = Field(
        default=30,
        ge=1,
        description="Wrong passwords from one address, over all accounts, before each "
        "further failure doubles the wait (stops one client spraying many accounts). "
        "Raise it when many people sign in from behind one address that is not a "
        "trusted proxy.",
    )
    login_lockout_minutes: int = Field(
        default=15, ge=1, description="The longest wait between sign-in attempts."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    run_embedded_worker: bool = Field(
        default=True,
        description="Run the embedded job runner inside `ledgerlink serve` (SQLite only).",
    )
    job_poll_seconds: float = Field(default=0.5, gt=0)
    job_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A job whose worker stops renewing it for this long runs again.",
    )
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    connection_test_seconds: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="How long *Test connection* (and the test behind Save) waits for an "
        "external system before it gives up and says which system did not answer.",
    )
    sync_page_size: int = Field(
        default=500,
        ge=10,
        le=5_000,
        description="Members a sync handles per checkpoint (one transaction each).",
    )
    payments_concurrency: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Payments of one integration pair (a PayTrace connection and the ledger "
        "it posts to) posted at once by one worker. Each pair has its own, so a pair whose "
        "ledger is slow or failing holds up only its own payments.",
    )
    payments_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A payment whose worker died is taken up again after this long.",
    )
    inbound_limit_per_address: str = Field(
        default="100/10 seconds",
        description="Silent posts (and webhooks failing their signature) one client address "
        "may send to /inbound; more are answered 429. Empty: no limit.",
    )
    inbound_limit_per_connection: str = Field(
        default="600/minute",
        description="Silent posts accepted per PayTrace connection (each costs a look-up in "
        "PayTrace). Empty: no limit.",
    )
    task_modules: list[str] = Field(
        default_factory=list,
        description="Extra modules to import for their job tasks (plug-ins, test tasks).",
    )
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0)
    sandbox_host: str = Field(default="127.0.0.1", description="Where the simulators listen.")
    sandbox_sbc_port: int = Field(default=8101, ge=1, le=65535)
    sandbox_paytrace_port: int = Field(default=8102, ge=1, le=65535)
    sandbox_sage500_port: int = Field(
        default=8103, ge=1, le=65535, description="The Sage 500 simulator's admin endpoint."
    )

    @field_validator("inbound_limit_per_address", "inbound_limit_per_connection")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        return check_limit(value)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: object) -> object:
        import ipaddress

        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for entry in value:
                try:
                    ipaddress.ip_network(str(entry), strict=False)
                except ValueError:
                    raise ValueError(
                        f"trusted_proxies: {entry!r} is not an IP address or network; list "
                        "proxies as addresses or CIDR networks, e.g. 10.0.0.5,192.168.0.0/24"
                    ) from None
        return value

    @property
    def sandbox_dir(self) -> Path:
        """Simulator state: survives restarts, removed by `ledgerlink sandbox reset`."""
        return self.var_dir / "sandbox"

    @property
    def sandbox_sage500_url(self) -> str:
        return f"sqlite:///{(self.sandbox_dir / 'sage500.sqlite3').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then the environment, then ledgerlink.toml.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if url and not url.startswith(("sqlite", "postgresql")):
            raise ValueError(
                "LEDGERLINK_DATABASE_URL must start with sqlite:// or postgresql+psycopg://"
            )
        return url

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'ledgerlink.db').resolve()}"

    @property
    def is_postgresql(self) -> bool:
        return self.resolved_database_url.startswith("postgresql")

    @property
    def job_backend(self) -> JobBackend:
        """procrastinate needs PostgreSQL; the embedded runner serves SQLite."""
        return "procrastinate" if self.is_postgresql else "embedded"

    @property
    def resolved_vault_key_file(self) -> Path:
        return self.vault_key_file or self.var_dir / "vault.key"
