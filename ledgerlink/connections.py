"""Stored connections to the external systems, with their secrets kept in the vault.

Non-secret settings are plain JSON that can be exported and reviewed; secrets are
write-only: they go in through the API, portal or CLI, are encrypted at once, and come
back out only as "set" or "not set". The adapters that use them live in ``connectors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.connectors import registry
from ledgerlink.identity.principal import Principal
from ledgerlink.opaque import JSONObject
from ledgerlink.store import audit
from ledgerlink.store.models import Connection, ConnectionSecret
from ledgerlink.vault import Vault, mask


def settings_model(kind: str) -> type[BaseModel] | None:
    """The settings model of an installed kind (``None``: not installed)."""
    return registry.descriptor(kind).settings_model if registry.is_known(kind) else None


def secret_names(kind: str) -> frozenset[str]:
    """Which secrets a kind holds. ``database_url`` is secret because it carries a password."""
    return registry.descriptor(kind).secret_names


def internal_secrets(kind: str) -> frozenset[str]:
    """Secrets connectors keep for themselves (never set through the API, never shown)."""
    return registry.descriptor(kind).internal_secrets


class InvalidConnection(ValueError):
    """Bad connection input; ``field`` names the input and ``message`` the fix."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def validate_settings(kind: str, raw: Mapping[str, object]) -> JSONObject:
    """``raw`` checked by the kind's settings model, as the JSON that is stored."""
    model = settings_model(kind)
    if model is None:
        raise InvalidConnection(
            "kind", f"unknown kind {kind!r}; use one of {', '.join(registry.kinds())}"
        )
    try:
        return model.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "settings." + ".".join(str(p) for p in first["loc"])
        raise InvalidConnection(field, first["msg"].removeprefix("Value error, ")) from None


def all_connections(session: Session, *, by_kind: bool = False) -> list[Connection]:
    """Every stored connection by name (grouped by kind first when ``by_kind``)."""
    order = (Connection.kind, Connection.name) if by_kind else (Connection.name,)
    return list(session.scalars(select(Connection).order_by(*order)))


class SecretState(TypedDict):
    """Whether a secret is set, shown masked, never revealed."""

    set: bool
    masked: str
    updated_at: str | None


class ConnectionView(TypedDict):
    """The connection as the API and audit show it (times as ISO 8601)."""

    id: int
    kind: str
    name: str
    settings: JSONObject
    is_active: bool
    auth_status: str
    auth_detail: str | None
    secrets: dict[str, SecretState]
    created_at: str
    updated_at: str


class ConnectionAuditView(TypedDict):
    """What the audit chain records about a connection: each secret as its mask."""

    id: int
    kind: str
    name: str
    settings: JSONObject
    is_active: bool
    auth_status: str
    auth_detail: str | None
    secrets: dict[str, str]


def describe(connection: Connection) -> ConnectionView:
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
            for name in sorted(secret_names(connection.kind))
        },
        "created_at": connection.created_at.isoformat(),
        "updated_at": connection.updated_at.isoformat(),
    }


def _audit_view(connection: Connection) -> ConnectionAuditView:
    view = describe(connection)
    return {
        "id": view["id"],
        "kind": view["kind"],
        "name": view["name"],
        "settings": view["settings"],
        "is_active": view["is_active"],
        "auth_status": view["auth_status"],
        "auth_detail": view["auth_detail"],
        "secrets": {name: s["masked"] for name, s in view["secrets"].items()},
    }


def create(
    session: Session,
    vault: Vault,
    by: Principal,
    *,
    kind: str,
    name: str,
    settings: Mapping[str, object],
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
    settings: Mapping[str, object] | None = None,
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
        # the masked value reads the same before and after, so name the secrets replaced
        after={**_audit_view(connection), "secrets_changed": sorted(secrets or ())},
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
    allowed = secret_names(connection.kind)
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
