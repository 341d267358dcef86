"""Accounting Integration: one page per connection (SBC, Sage 500, PayTrace).

Live choices (business, financial years, payment methods, bank and ledger accounts) are
read from the ledger itself, so administrators pick from what exists instead of typing
ids. Save validates, tests the connection and activates it only when every check passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from sqlalchemy import select

from ledgerlink import connections
from ledgerlink.connections_config import export_yaml, import_yaml
from ledgerlink.connectors.base import CheckResult
from ledgerlink.connectors.checks import check_connection
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.connectors.factory import ledger_for
from ledgerlink.connectors.sbc.ledger import SbcLedger
from ledgerlink.domain.periods import financial_years
from ledgerlink.domain.text import control_character_problem
from ledgerlink.identity.principal import Principal
from ledgerlink.store.models import Connection
from ledgerlink.web.portal.rendering import render, render_error
from ledgerlink.web.security import admin, operator, viewer

router = APIRouter()

KIND_LABELS = {
    "sbc": "Sage Business Cloud",
    "sage500": "Sage 500",
    "paytrace": "PayTrace",
    "smtp": "E-mail (SMTP)",
}
NOTICES = {
    "connected": "Sage granted access. Pick the business and the other settings, then Save.",
    "created": "Connection added. Fill in its settings and Save.",
    "saved": "Saved and tested: the connection is active.",
}
PAYTRACE_URLS = {
    "sandbox": "https://api.sandbox.paytrace.com",
    "production": "https://api.paytrace.com",
}


@dataclass
class SbcChoices:
    """What the SBC page offers, read live from Sage (empty when not connected yet)."""

    businesses: list[dict[str, str]] = field(default_factory=list)
    years: list[dict[str, str]] = field(default_factory=list)
    lockdown: date | None = None
    payment_methods: list[dict[str, Any]] = field(default_factory=list)
    bank_accounts: list[dict[str, Any]] = field(default_factory=list)
    ledger_accounts: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None


async def _sbc_choices(request: Request, connection: Connection) -> SbcChoices:
    choices = SbcChoices()
    if connection.auth_status != "connected":
        return choices
    runtime = request.app.state.runtime
    try:
        ledger = ledger_for(runtime, connection)
    except UpstreamError as exc:
        choices.problem = exc.message
        return choices
    assert isinstance(ledger, SbcLedger)
    try:
        choices.businesses = await ledger.businesses()
        settings = await ledger._get("/financial_settings", what="financial settings")
        year_end = settings.get("year_end_date")
        start = settings.get("accounts_start_date")
        if year_end:
            years = financial_years(
                date.fromisoformat(str(year_end)[:10]),
                date.fromisoformat(str(start)[:10]) if start else None,
            )
            choices.years = [{"key": y.key, "label": y.label} for y in years]
        lockdown = settings.get("year_end_lockdown_date")
        choices.lockdown = date.fromisoformat(str(lockdown)[:10]) if lockdown else None
        choices.payment_methods = await ledger.lookup("payment_methods")
        choices.bank_accounts = await ledger.lookup("bank_accounts")
        choices.ledger_accounts = await ledger.lookup("ledger_accounts")
    except UpstreamError as exc:
        choices.problem = exc.message
    finally:
        await ledger.aclose()
    return choices


def _load(request: Request, connection_id: int) -> Connection | None:
    with request.app.state.runtime.db.read() as session:
        found: Connection | None = session.get(Connection, connection_id)
        return found


@router.get("/connections")
def integration_home(
    request: Request, principal: Annotated[Principal, Depends(viewer)], done: str | None = None
) -> Response:
    with request.app.state.runtime.db.read() as session:
        rows = list(session.scalars(select(Connection).order_by(Connection.kind, Connection.name)))
    return render(
        request,
        "integration.html",
        connections=rows,
        kinds=KIND_LABELS,
        notice=NOTICES.get(done or ""),
    )


@router.post("/connections")
async def add_connection(
    request: Request, principal: Annotated[Principal, Depends(admin)]
) -> Response:
    form = await request.form()
    kind, name = str(form.get("kind") or ""), str(form.get("name") or "")
    runtime = request.app.state.runtime
    defaults: dict[str, Any] = {}
    try:
        if problem := control_character_problem(name):
            raise connections.InvalidConnection("name", problem)
        with runtime.db.transaction() as session:
            created = connections.create(
                session, runtime.vault, principal, kind=kind, name=name, settings=defaults
            )
            new_id = created.id
    except connections.InvalidConnection as exc:
        with runtime.db.read() as session:
            rows = list(session.scalars(select(Connection).order_by(Connection.name)))
        return render(
            request,
            "integration.html",
            status_code=422,
            connections=rows,
            kinds=KIND_LABELS,
            error=f"{exc.field}: {exc.message}",
        )
    return RedirectResponse(f"/connections/{new_id}?done=created", 303)


@router.get("/connections/export.yaml")
def export_configuration(request: Request, _: Annotated[Principal, Depends(admin)]) -> Response:
    with request.app.state.runtime.db.read() as session:
        text = export_yaml(session)
    return PlainTextResponse(
        text,
        media_type="application/yaml",
        headers={"Content-Disposition": 'attachment; filename="ledgerlink-connections.yaml"'},
    )


@router.post("/connections/import")
async def import_configuration(
    request: Request,
    principal: Annotated[Principal, Depends(admin)],
    file: Annotated[UploadFile, File()],
) -> Response:
    runtime = request.app.state.runtime
    raw = await file.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    with runtime.db.transaction() as session:
        report = import_yaml(session, runtime.vault, principal, text) if text else None
        if report is not None and report.errors:
            session.rollback()
        rows = list(session.scalars(select(Connection).order_by(Connection.name)))
    if report is None:
        return render(
            request,
            "integration.html",
            status_code=422,
            connections=rows,
            kinds=KIND_LABELS,
            error="file: not a UTF-8 text file; upload the YAML that 'Export settings' produced",
        )
    status = 422 if report.errors else 200
    return render(
        request,
        "integration.html",
        status_code=status,
        connections=rows,
        kinds=KIND_LABELS,
        import_report=report,
    )


@router.get("/connections/{connection_id}")
async def connection_page(
    request: Request,
    connection_id: int,
    principal: Annotated[Principal, Depends(viewer)],
    done: str | None = None,
) -> Response:
    connection = _load(request, connection_id)
    if connection is None:
        return render_error(request, 404, "There is no such connection.")
    choices = await _sbc_choices(request, connection) if connection.kind == "sbc" else None
    return _detail(request, connection, choices, notice=NOTICES.get(done or ""))


def _detail(
    request: Request,
    connection: Connection,
    choices: SbcChoices | None,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    return render(
        request,
        "connection.html",
        status_code=status_code,
        connection=connection,
        view=connections.describe(connection),
        kind_label=KIND_LABELS[connection.kind],
        choices=choices,
        member_methods=connections.MEMBER_PAYMENT_METHODS,
        paytrace_urls=PAYTRACE_URLS,
        ledgers=_ledger_choices(request) if connection.kind == "paytrace" else [],
        **extra,
    )


def _ledger_choices(request: Request) -> list[tuple[int, str]]:
    from sqlalchemy import select

    with request.app.state.db.read() as session:
        rows = session.execute(
            select(Connection.id, Connection.name)
            .where(Connection.kind.in_(("sbc", "sage500")))
            .order_by(Connection.name)
        ).all()
    return [(int(i), str(n)) for i, n in rows]


def _settings_from_form(kind: str, form: Any, current: dict[str, Any]) -> dict[str, Any]:
    """Form fields → settings for ``kind``; fields not on the form keep their value."""
    text = {k: str(v).strip() for k, v in form.multi_items() if isinstance(v, str)}
    settings = dict(current)
    simple = {
        "sbc": (
            "client_id",
            "business_id",
            "receipt_bank_account_id",
            "membership_fee_ledger_account_id",
            "api_base_url",
            "authorize_url",
            "token_url",
        ),
        "paytrace": (
            "username",
            "integrator_id",
            "environment",
            "api_base_url",
            "post_to_connection_id",
            "overpayment",
            "poll_interval_seconds",
            "poll_overlap_minutes",
        ),
        "sage500": (
            "mode",
            "company_id",
            "currency",
            "drop_folder",
            "results_folder",
            "receipt_gl_account",
            "refund_gl_account",
            "import_wait_seconds",
        ),
        "smtp": (
            "host",
            "port",
            "security",
            "username",
            "from_address",
            "digest_at",
            "timezone",
            "exceptions_threshold",
            "pending_minutes_threshold",
        ),
    }[kind]
    for name in simple:
        if name in text:
            settings[name] = text[name] or None
    if kind == "sbc":
        settings["accounting_periods"] = list(form.getlist("accounting_periods"))
        methods = {}
        for method in connections.MEMBER_PAYMENT_METHODS:
            chosen = text.get(f"pm_{method}_method")
            if chosen:
                methods[method] = {
                    "payment_method_id": chosen,
                    "bank_account_id": text.get(f"pm_{method}_bank") or None,
                }
        settings["payment_methods"] = methods
    if kind == "smtp":
        if "recipients" in text:
            settings["recipients"] = [r.strip() for r in text["recipients"].split(",") if r.strip()]
        if "alerts_shown" in text:
            settings["alerts"] = text.get("alerts") == "1"
        if "digest_at" in text:
            settings["digest_at"] = text["digest_at"]  # empty turns the digest off
    if kind == "paytrace" and "polling_shown" in text:
        settings["polling"] = text.get("polling") == "1"
    if kind == "paytrace" and "environment" in text and not text.get("api_base_url"):
        settings["api_base_url"] = PAYTRACE_URLS.get(
            text["environment"], settings.get("api_base_url")
        )
    return settings


@router.post("/connections/{connection_id}")
async def save_connection(
    request: Request, connection_id: int, principal: Annotated[Principal, Depends(admin)]
) -> Response:
    runtime = request.app.state.runtime
    form = await request.form()
    connection = _load(request, connection_id)
    if connection is None:
        return render_error(request, 404, "There is no such connection.")
    secrets = {
        name: str(form.get(f"secret_{name}") or "")
        for name in connections.SECRET_NAMES[connection.kind]
        if form.get(f"secret_{name}")
    }
    try:
        with runtime.db.transaction() as session:
            current = session.get(Connection, connection_id)
            assert current is not None
            connections.update(
                session,
                runtime.vault,
                principal,
                current,
                settings=_settings_from_form(current.kind, form, current.settings),
                secrets=secrets,
            )
    except connections.InvalidConnection as exc:
        choices = await _sbc_choices(request, connection) if connection.kind == "sbc" else None
        return _detail(
            request, connection, choices, status_code=422, error=f"{exc.field}: {exc.message}"
        )
    saved = _load(request, connection_id)
    assert saved is not None
    checks = await check_connection(runtime, saved)
    passed = all(c.ok for c in checks)
    with runtime.db.transaction() as session:
        current = session.get(Connection, connection_id)
        assert current is not None
        if current.is_active != passed:
            connections.update(session, runtime.vault, principal, current, is_active=passed)
    if passed:
        return RedirectResponse(f"/connections/{connection_id}?done=saved", 303)
    saved = _load(request, connection_id)
    assert saved is not None
    choices = await _sbc_choices(request, saved) if saved.kind == "sbc" else None
    return _detail(
        request,
        saved,
        choices,
        status_code=200,
        checks=checks,
        error="Saved, but not active: fix the failed checks below and save again.",
    )


@router.post("/connections/{connection_id}/test")
async def run_connection_checks(
    request: Request, connection_id: int, _: Annotated[Principal, Depends(operator)]
) -> Response:
    connection = _load(request, connection_id)
    if connection is None:
        return render_error(request, 404, "There is no such connection.")
    checks: list[CheckResult] = await check_connection(request.app.state.runtime, connection)
    return render(request, "connection_checks.html", checks=checks)
