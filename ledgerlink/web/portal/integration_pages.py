"""Accounting Integration: one page per connection, whatever its kind.

Each kind's settings form is the connector's own (``ConnectorKind.settings_template``,
with what it offers from ``page_context``: SBC reads its choices live from Sage, so
administrators pick from what exists instead of typing ids). Save is the
:mod:`ledgerlink.connection_setup` use case: validate, test, activate only when every
check passes. A refused form shows again as it was typed, each error beside its field;
a system that did not answer gives "saved, not verified" with the reason, never a loss.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from ledgerlink import connection_setup, connections
from ledgerlink.blocking import in_thread
from ledgerlink.connections_config import export_yaml, import_connections
from ledgerlink.connectors import registry
from ledgerlink.connectors.base import CheckResult
from ledgerlink.connectors.checks import check_connection
from ledgerlink.domain.text import control_character_problem
from ledgerlink.identity.principal import Principal
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection
from ledgerlink.sync.realtime_inbound_views import read_polling_view
from ledgerlink.web.deps import Admin, Operator, RuntimeDep, Viewer
from ledgerlink.web.portal.rendering import render, render_error

router = APIRouter()

GENERIC_FORM = "connection_generic_settings.html"
NOTICES = {
    "connected": "Sage granted access. Pick the business and the other settings, then Save.",
    "created": "Connection added. Fill in its settings and Save.",
    "saved": connection_setup.ACTIVE,
}


def _load(runtime: Runtime, connection_id: int) -> Connection | None:
    with runtime.db.read() as session:
        found: Connection | None = session.get(Connection, connection_id)
        return found


def _home(
    request: Request, rows: list[Connection], status_code: int = 200, **extra: Any
) -> Response:
    return render(
        request,
        "integration.html",
        status_code=status_code,
        connections=rows,
        kinds=registry.all_labels(),
        interactive_kinds=[d.kind for d in registry.descriptors() if d.interactive_auth],
        **extra,
    )


@router.get("/connections")
def integration_home(
    request: Request, runtime: RuntimeDep, principal: Viewer, done: str | None = None
) -> Response:
    with runtime.db.read() as session:
        rows = connections.all_connections(session, by_kind=True)
    return _home(request, rows, notice=NOTICES.get(done or ""))


@router.post("/connections")
async def add_connection(request: Request, runtime: RuntimeDep, principal: Admin) -> Response:
    form = await request.form()
    kind, name = str(form.get("kind") or ""), str(form.get("name") or "")
    try:
        new_id = await in_thread(_create, runtime, principal, kind, name)
    except connections.InvalidConnection as exc:
        rows = await in_thread(_all, runtime)
        return _home(request, rows, status_code=422, error=f"{exc.field}: {exc.message}")
    return RedirectResponse(f"/connections/{new_id}?done=created", 303)


def _create(runtime: Runtime, principal: Principal, kind: str, name: str) -> int:
    """A new connection of ``kind`` with its defaults; its id."""
    if problem := control_character_problem(name):
        raise connections.InvalidConnection("name", problem)
    with runtime.db.transaction() as session:
        created = connections.create(
            session, runtime.vault, principal, kind=kind, name=name, settings={}
        )
        return created.id


def _all(runtime: Runtime) -> list[Connection]:
    with runtime.db.read() as session:
        return connections.all_connections(session)


@router.get("/connections/export.yaml")
def export_configuration(runtime: RuntimeDep, _: Admin) -> Response:
    with runtime.db.read() as session:
        text = export_yaml(session)
    return PlainTextResponse(
        text,
        media_type="application/yaml",
        headers={"Content-Disposition": 'attachment; filename="ledgerlink-connections.yaml"'},
    )


@router.post("/connections/import")
async def import_configuration(
    request: Request,
    runtime: RuntimeDep,
    principal: Admin,
    file: Annotated[UploadFile, File()],
) -> Response:
    raw = await file.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    report = await import_connections(runtime, principal, text) if text else None
    rows = await in_thread(_all, runtime)
    if report is None:
        return _home(
            request,
            rows,
            status_code=422,
            error="file: not a UTF-8 text file; upload the YAML that 'Export settings' produced",
        )
    return _home(request, rows, status_code=422 if report.errors else 200, import_report=report)


@router.get("/connections/{connection_id}")
async def connection_page(
    request: Request,
    runtime: RuntimeDep,
    connection_id: int,
    principal: Viewer,
    done: str | None = None,
) -> Response:
    connection = await in_thread(_load, runtime, connection_id)
    if connection is None:
        return render_error(request, 404, "There is no such connection.")
    return await _detail(request, runtime, connection, notice=NOTICES.get(done or ""))


async def _detail(
    request: Request,
    runtime: Runtime,
    connection: Connection,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    connector = registry.descriptor(connection.kind)
    page = await connector.page_context(runtime, connection) if connector.page_context else {}
    extra.setdefault("view", connections.describe(connection))
    extra.setdefault("polling", await in_thread(read_polling_view, runtime.db, connection))
    return render(
        request,
        "connection.html",
        status_code=status_code,
        connection=connection,
        connector=connector,
        settings_template=connector.settings_template or GENERIC_FORM,
        kind_label=connector.label,
        test_seconds=runtime.settings.connection_test_seconds,
        **page,
        **extra,
    )


def _empty(model: Any, name: str) -> str | None:
    """What an empty text box means for setting ``name``: "not set" (``None``) where the
    setting may be unset, an empty text where text is expected (an SMTP user name left
    empty means no login), else the empty text itself, which validation names."""
    info = model.model_fields.get(name)
    if info is None:
        return None
    optional = get_origin(info.annotation) in (Union, types.UnionType)
    return None if optional and type(None) in get_args(info.annotation) else ""


def _settings_from_form(kind: str, form: Any, current: dict[str, Any]) -> dict[str, Any]:
    """Form fields → settings for ``kind``; fields not on the form keep their value."""
    connector = registry.descriptor(kind)
    text = {k: str(v).strip() for k, v in form.multi_items() if isinstance(v, str)}
    settings = dict(current)
    for name in connector.editable_fields():
        if name in text:
            settings[name] = text[name] or _empty(connector.settings_model, name)
    if connector.form_settings is not None:
        connector.form_settings(text, lambda name: list(form.getlist(name)), settings)
    return settings


@router.post("/connections/{connection_id}")
async def save_connection(
    request: Request, runtime: RuntimeDep, connection_id: int, principal: Admin
) -> Response:
    form = await request.form()
    connection = await in_thread(_load, runtime, connection_id)
    if connection is None:
        return render_error(request, 404, "There is no such connection.")
    secrets = {
        name: str(form.get(f"secret_{name}") or "")
        for name in connections.secret_names(connection.kind)
        if form.get(f"secret_{name}")
    }
    typed = _settings_from_form(connection.kind, form, connection.settings)
    try:
        saved = await connection_setup.save(
            runtime, principal, connection_id, settings=typed, secrets=secrets, activate=True
        )
    except connection_setup.NoSuchConnection:
        return render_error(request, 404, "There is no such connection.")
    except connections.InvalidConnection as exc:
        # Nothing was stored: the form comes back as typed, the error beside its field.
        view = connections.describe(connection)
        view["settings"] = {**view["settings"], **typed}
        return await _detail(
            request,
            runtime,
            connection,
            status_code=422,
            view=view,
            field_errors={_form_field(exc.field): exc.message},
            error=f"Not saved: {_field_label(exc.field)} {exc.message}. Correct it below "
            "and save again.",
        )
    if saved.active and saved.verified:
        return RedirectResponse(f"/connections/{connection_id}?done=saved", 303)
    outcome: dict[str, Any] = {"warning" if not saved.verified else "error": saved.message}
    return await _detail(request, runtime, saved.connection, checks=list(saved.checks), **outcome)


def _form_field(field: str) -> str:
    """The form's input for an error's field ("settings.port" → "port", "secrets.password"
    → "secret_password"; a table's cell names its table)."""
    head, _, rest = field.partition(".")
    name = rest.partition(".")[0] if rest else head
    return f"secret_{name}" if head == "secrets" else name


def _field_label(field: str) -> str:
    return _form_field(field).removeprefix("secret_").replace("_", " ").capitalize() + ":"


@router.post("/connections/{connection_id}/test")
async def run_connection_checks(
    request: Request, runtime: RuntimeDep, connection_id: int, _: Operator
) -> Response:
    connection = await in_thread(_load, runtime, connection_id)
    if connection is None:
        return render_error(request, 404, "There is no such connection.")
    checks: list[CheckResult] = await check_connection(runtime, connection)
    return render(request, "connection_checks.html", checks=checks)
