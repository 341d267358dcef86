"""Stored connections to the external systems, with their secrets kept in the vault.

Non-secret settings are plain JSON that can be exported and reviewed; secrets are
write-only: they go in through the API, portal or CLI, are encrypted at once, and come
back out only as "set" or "not set". The adapters that use them live in ``connectors``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.domain.periods import FinancialYear
from ledgerlink.identity.principal import Principal
from ledgerlink.store import audit
from ledgerlink.store.models import Connection, ConnectionSecret
from ledgerlink.vault import Vault, mask

ConnectionKind = Literal["sbc", "paytrace", "sage500", "smtp"]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


MEMBER_PAYMENT_METHODS = ("card", "bank_transfer", "cash", "cheque", "direct_debit")


class PaymentMethodMapping(BaseModel):
    """Where a member-side payment method lands in the ledger."""

    model_config = ConfigDict(extra="forbid")
    payment_method_id: str = Field(max_length=64)
    bank_account_id: str | None = Field(default=None, max_length=64)


class SbcSettings(_Settings):
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


class PayTraceSettings(_Settings):
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


class Sage500Settings(_Settings):
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


class SmtpSettings(_Settings):
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
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone; use a name like Europe/London"
            ) from None
        return value


def _address(value: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not an e-mail address: {exc}") from None


SETTINGS_MODELS: dict[str, type[_Settings]] = {
    "sbc": SbcSettings,
    "paytrace": PayTraceSettings,
    "sage500": Sage500Settings,
    "smtp": SmtpSettings,
}

#: Which secrets each kind holds. ``database_url`` is secret because it carries a password.
SECRET_NAMES: dict[str, frozenset[str]] = {
    "sbc": frozenset({"client_secret", "refresh_token"}),
    "paytrace": frozenset({"password", "webhook_secret"}),
    "sage500": frozenset({"database_url"}),
    "smtp": frozenset({"password"}),
}
#: Secrets connectors keep for themselves (never set through the API, never shown).
INTERNAL_SECRETS: dict[str, frozenset[str]] = {"sbc": frozenset({"access_token"})}


class InvalidConnection(ValueError):
    """Bad connection input; ``field`` names the input and ``message`` the fix."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def validate_settings(kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    model = SETTINGS_MODELS.get(kind)
    if model is None:
        raise InvalidConnection(
            "kind", f"unknown kind {kind!r}; use one of {', '.join(SETTINGS_MODELS)}"
        )
    try:
        return model.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "settings." + ".".join(str(p) for p in first["loc"])
        raise InvalidConnection(field, first["msg"].removeprefix("Value error, ")) from None


def describe(connection: Connection) -> dict[str, Any]:
    """The connection as the API and audit show it: secrets masked, never revealed."""
    stored = {s.name: s for s in connection.secrets}
    return {
        "id": connection.id,
        "kind": connection.kind,
        "name": connection.name,
        "settings": connection.settings,
        "is_active": connection.is_active,
        "auth_status": connection.auth_status,
        "auth_detail": connection.auth_detail,
        "secrets": {
            name: {
                "set": name in stored,
                "masked": mask("x" if name in stored else None),
                "updated_at": stored[name].updated_at.isoformat() if name in stored else None,
            }
            for name in sorted(SECRET_NAMES[connection.kind])
        },
        "created_at": connection.created_at.isoformat(),
        "updated_at": connection.updated_at.isoformat(),
    }


def _audit_view(connection: Connection) -> dict[str, Any]:
    view = describe(connection)
    view["secrets"] = {name: s["masked"] for name, s in view["secrets"].items()}
    view.pop("created_at")
    view.pop("updated_at")
    return view


def create(
    session: Session,
    vault: Vault,
    by: Principal,
    *,
    kind: str,
    name: str,
    settings: dict[str, Any],
    secrets: dict[str, str] | None = None,
) -> Connection:
    clean = validate_settings(kind, settings)
    label = name.strip()
    if not label:
        raise InvalidConnection("name", "give the connection a name")
    if session.scalar(select(Connection.id).where(Connection.name == label)) is not None:
        raise InvalidConnection("name", f"a connection named {label!r} already exists")
    connection = Connection(kind=kind, name=label, settings=clean, is_active=False)
    session.add(connection)
    session.flush()
    _store_secrets(connection, vault, secrets or {})
    session.flush()
    audit.record(
        session,
        actor=by.actor,
        action="connection.created",
        entity_type="connection",
        entity_id=connection.id,
        after=_audit_view(connection),
    )
    return connection


def update(
    session: Session,
    vault: Vault,
    by: Principal,
    connection: Connection,
    *,
    settings: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    is_active: bool | None = None,
) -> Connection:
    before = _audit_view(connection)
    if settings is not None:
        connection.settings = validate_settings(
            connection.kind, {**connection.settings, **settings}
        )
    if secrets:
        _store_secrets(connection, vault, secrets)
    if is_active is not None:
        connection.is_active = is_active
    session.flush()
    audit.record(
        session,
        actor=by.actor,
        action="connection.updated",
        entity_type="connection",
        entity_id=connection.id,
        before=before,
        after=_audit_view(connection),
    )
    return connection


def delete(session: Session, by: Principal, connection: Connection) -> None:
    before = _audit_view(connection)
    session.delete(connection)
    audit.record(
        session,
        actor=by.actor,
        action="connection.deleted",
        entity_type="connection",
        entity_id=connection.id,
        before=before,
    )


def read_secret(vault: Vault, connection: Connection, name: str) -> str | None:
    """For connectors only: the decrypted secret, never for display."""
    for stored in connection.secrets:
        if stored.name == name:
            return vault.decrypt(stored.ciphertext)
    return None


def _store_secrets(connection: Connection, vault: Vault, secrets: dict[str, str]) -> None:
    allowed = SECRET_NAMES[connection.kind]
    existing = {s.name: s for s in connection.secrets}
    for name, value in secrets.items():
        if name not in allowed:
            raise InvalidConnection(
                f"secrets.{name}",
                f"{connection.kind} connections hold only: {', '.join(sorted(allowed))}",
            )
        if not value:
            raise InvalidConnection(
                f"secrets.{name}", "must not be empty; omit it to keep the stored value"
            )
        if name in existing:
            existing[name].ciphertext = vault.encrypt(value)
        else:
            connection.secrets.append(ConnectionSecret(name=name, ciphertext=vault.encrypt(value)))
