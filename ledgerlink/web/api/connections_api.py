"""Connections to SBC, PayTrace and Sage 500. Secrets are write-only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, Field, StrictBool
from pydantic.config import JsonDict
from sqlalchemy.orm import Session

from ledgerlink import connection_setup, connections
from ledgerlink.blocking import in_thread
from ledgerlink.connectors import registry
from ledgerlink.connectors.checks import check_connection
from ledgerlink.opaque import JSONObject
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection
from ledgerlink.web.api.inputs import CleanObject, CleanText, PathId
from ledgerlink.web.api.outputs import ResponseModel
from ledgerlink.web.deps import Admin, Operator, ReadSession, RuntimeDep, Viewer, WriteSession
from ledgerlink.web.problems import Problem, field_problem

router = APIRouter(tags=["connections"])


def _installed_kind(kind: str) -> str:
    if not registry.is_known(kind):
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(registry.kinds())}")
    return kind


def _kinds_schema(schema: JsonDict) -> None:
    schema["enum"] = list(registry.kinds())


#: A connection kind this installation has (the connector registry's), documented as such.
ConnectionKind = Annotated[
    str, AfterValidator(_installed_kind), Field(json_schema_extra=_kinds_schema)
]


class ConnectionIn(BaseModel):
    kind: ConnectionKind
    name: CleanText = Field(min_length=1, max_length=100)
    settings: CleanObject = Field(default_factory=dict)
    secrets: dict[str, CleanText] = Field(
        default_factory=dict, description="Write-only; responses only say whether each is set."
    )


class ConnectionPatch(BaseModel):
    settings: CleanObject | None = None
    secrets: dict[str, CleanText] | None = None
    is_active: StrictBool | None = None


class SecretOut(ResponseModel):
    set: bool
    masked: str = Field(description="A fixed mask when set, empty when not; never the secret.")
    updated_at: str | None


class ConnectionOut(ResponseModel):
    id: int
    kind: str
    name: str
    settings: JSONObject = Field(description="The kind's settings (see its settings form).")
    is_active: bool
    auth_status: str
    auth_detail: str | None
    secrets: dict[str, SecretOut] = Field(description="Each secret the kind holds, masked.")
    created_at: str
    updated_at: str


def _out(connection: Connection) -> ConnectionOut:
    return ConnectionOut.model_validate(connections.describe(connection))


def _not_found(connection_id: int) -> Problem:
    return Problem(404, "Not found", f"There is no connection {connection_id}.")


def _get(session: Session, connection_id: int) -> Connection:
    found = session.get(Connection, connection_id)
    if found is None:
        raise _not_found(connection_id)
    return found


def _read(runtime: Runtime, connection_id: int) -> Connection:
    with runtime.db.read() as session:
        return _get(session, connection_id)


@router.get("/connections", summary="List connections (secrets masked)")
def list_connections(session: ReadSession, _: Viewer) -> list[ConnectionOut]:
    return [_out(c) for c in connections.all_connections(session)]


@router.get("/connections/{connection_id}", summary="One connection (secrets masked)")
def get_connection(session: ReadSession, connection_id: PathId, _: Viewer) -> ConnectionOut:
    return _out(_get(session, connection_id))


@router.post("/connections", status_code=201, summary="Create a connection")
def create_connection(
    runtime: RuntimeDep, session: WriteSession, body: ConnectionIn, principal: Admin
) -> ConnectionOut:
    try:
        created = connections.create(
            session,
            runtime.vault,
            principal,
            kind=body.kind,
            name=body.name,
            settings=body.settings,
            secrets=body.secrets,
        )
    except connections.InvalidConnection as exc:
        raise field_problem(exc.field, exc.message) from None
    return _out(created)


@router.patch(
    "/connections/{connection_id}",
    summary="Change settings, secrets or activation",
    description=(
        "Activating (`is_active: true`) tests the connection first, as the portal's Save "
        "does: it becomes active only when every check passes. Changing the settings or "
        "secrets of an active connection tests it again. When a test fails, what was sent "
        "is kept, the connection is left inactive, and the answer is a 409 naming each "
        "failed check (`checks.<name>`). When the system cannot be reached (down, hung, "
        "rate limiting), what was sent is kept and the connection stays as it was: an "
        "active one stays active (200), an inactive one answers 409 'Saved, but not "
        "verified'."
    ),
)
async def patch_connection(
    runtime: RuntimeDep, connection_id: PathId, body: ConnectionPatch, principal: Admin
) -> ConnectionOut:
    try:
        saved = await connection_setup.save(
            runtime,
            principal,
            connection_id,
            settings=body.settings,
            secrets=body.secrets,
            activate=body.is_active,
        )
    except connection_setup.NoSuchConnection:
        raise _not_found(connection_id) from None
    except connections.InvalidConnection as exc:
        raise field_problem(exc.field, exc.message) from None
    if saved.tested and not saved.active:
        raise Problem(
            409,
            "Not activated",
            saved.message or "",
            kind="connection-not-activated",
            errors=[{"field": f"checks.{c.name}", "message": c.detail} for c in saved.failed],
        )
    return _out(saved.connection)


@router.delete("/connections/{connection_id}", status_code=204, summary="Delete a connection")
def delete_connection(session: WriteSession, connection_id: PathId, principal: Admin) -> None:
    connections.delete(session, principal, _get(session, connection_id))


class CheckOut(BaseModel):
    name: str
    ok: bool
    detail: str


class ConnectionTestOut(BaseModel):
    ok: bool
    checks: list[CheckOut]


@router.post(
    "/connections/{connection_id}/test",
    summary="Check reachability, credentials, permissions and the chosen business/company",
)
async def run_connection_test(
    runtime: RuntimeDep, connection_id: PathId, _: Operator
) -> ConnectionTestOut:
    connection = await in_thread(_read, runtime, connection_id)
    results = await check_connection(runtime, connection)
    return ConnectionTestOut(
        ok=all(r.ok for r in results),
        checks=[CheckOut(name=r.name, ok=r.ok, detail=r.detail) for r in results],
    )
