"""``ledgerlink recon …``: run a reconciliation, list and resolve breaks, import a bank
statement, close and reopen a period.

The reconciliation modules load polars, lxml and xlsxwriter (about 0.9 s), so ``cli.py``
imports this module only when a ``recon`` command runs (``DeferredGroup``), never at
every ``ledgerlink`` start; here everything is imported at the top."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.domain.money import Money, MoneyError
from ledgerlink.identity.principal import cli_principal
from ledgerlink.recon import exports, resolutions
from ledgerlink.recon.fees import brand_key, parse_rate, schedule_of
from ledgerlink.recon.imports import import_statement as do_import
from ledgerlink.recon.periods import close_period, reopen_period
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.recon.rule_commands import rules_app
from ledgerlink.recon.runs import default_matcher, run_scope
from ledgerlink.recon.scopes import (
    alert_settings,
    ensure_default_scopes,
    get_scope,
    resolve_scope,
    update_settings,
)
from ledgerlink.recon.statements.csv_columns import CsvMapping
from ledgerlink.recon.views import BreakFilter, break_rows, scopes, summary
from ledgerlink.terminal import err, out
from ledgerlink.terminal import failure as _fail
from ledgerlink.terminal import runtime as _runtime

#: Registered in ``cli.py`` (with its help text) as a deferred group.
recon_app = typer.Typer(no_args_is_help=True)

ScopeOption = Annotated[
    int | None,
    typer.Option("--scope", help="Scope id (a PayTrace + ledger pair); the only one if omitted."),
]


def _scope_id(scope: int | None) -> int:
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            return resolve_scope(session, scope, actor=cli_principal().actor).id
    except ReconRefused as refused:
        raise _fail(f"{refused.field}: {refused}") from None


@recon_app.command("scopes")
def list_scopes() -> None:
    """Every scope: its pair of connections, open breaks and last run."""
    runtime = _runtime()
    with runtime.db.transaction() as session:
        ensure_default_scopes(session, actor=cli_principal().actor)
        rows = scopes(session)
    table = Table("id", "name", "open breaks", "last run")
    for row in rows:
        table.add_row(str(row.id), row.name, str(row.open_breaks), row.last_run_at or "never")
    out.print(table)


@recon_app.command("run")
def run(
    scope: ScopeOption = None,
    as_of: Annotated[
        str | None, typer.Option(help="Count ages to this day (YYYY-MM-DD); today if omitted.")
    ] = None,
    full: Annotated[bool, typer.Option(help="Re-read every side from the start.")] = False,
    read: Annotated[
        bool, typer.Option(help="Read the sides first (--no-read: match what is stored).")
    ] = True,
) -> None:
    """Read the four sides, match them and show what did not reconcile."""
    scope_id = _scope_id(scope)
    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise _fail(f"--as-of: {as_of!r} is not a date; give it as YYYY-MM-DD") from None
    runtime = _runtime()
    try:
        outcome = asyncio.run(
            run_scope(
                runtime,
                scope_id,
                cli_principal(),
                trigger="cli",
                matcher=default_matcher(runtime.db),
                as_of=day,
                read=read,
                full=full,
            )
        )
    except (ReconRefused, UpstreamError) as exc:
        raise _fail(str(exc)) from None
    out.print(outcome.message)
    _print_summary(scope_id)


def _print_summary(scope_id: int) -> None:
    runtime = _runtime()
    with runtime.db.read() as session:
        found = summary(session, get_scope(session, scope_id))
    out.print(
        f"[bold]{found.scope_name}[/bold]: {found.matched_count} matched ({found.matched_amount}); "
        f"{found.open_breaks} open breaks ({found.open_amount})"
    )
    if found.breaks_by_type:
        table = Table("break", "count", "amount")
        for t in found.breaks_by_type:
            table.add_row(t.label, str(t.count), t.amount)
        out.print(table)


@recon_app.command("breaks")
def breaks(
    scope: ScopeOption = None,
    type_: Annotated[str | None, typer.Option("--type", help="e.g. missing_receipt")] = None,
    status: Annotated[str, typer.Option(help="open, resolved, explained or all.")] = "open",
    period: Annotated[str | None, typer.Option(help="A month, YYYY-MM.")] = None,
    export: Annotated[
        Path | None, typer.Option(help="Write the list to this .csv or .xlsx file.")
    ] = None,
) -> None:
    """The breaks, with what each is in finance words and how to fix it."""
    if status not in ("open", "resolved", "explained", "all"):
        raise _fail(f"--status: {status!r} is not one of open, resolved, explained, all")
    scope_id = _scope_id(scope)
    runtime = _runtime()
    try:
        with runtime.db.read() as session:
            rows = break_rows(
                session,
                scope_id,
                BreakFilter(type=type_, status=status, period=period, limit=10_000),
            )
    except ReconRefused as refused:
        raise _fail(f"--{refused.field}: {refused}") from None
    if export is not None:
        if export.suffix.lower() == ".xlsx":
            export.write_bytes(exports.breaks_xlsx(rows))
        elif export.suffix.lower() == ".csv":
            export.write_text(exports.breaks_csv(rows), encoding="utf-8")
        else:
            raise _fail("--export: give a file name ending in .csv or .xlsx")
        out.print(f"{len(rows)} breaks written to {export}")
        return
    table = Table("break", "type", "amount", "age", "ids", "status", "detail")
    for row in rows:
        table.add_row(
            row.break_id,
            row.label,
            row.amount,
            f"{row.age_days} d",
            " ".join(row.ids),
            row.status + (f" ({row.assigned_to})" if row.assigned_to else ""),
            row.detail,
        )
    out.print(table)
    out.print(f"{len(rows)} breaks")


@recon_app.command("resolve")
def resolve(
    break_id: Annotated[str, typer.Argument(help="The break's id (from `recon breaks`).")],
    action: Annotated[
        str, typer.Option(help="post_receipt, reverse_duplicate, explain or assign.")
    ],
    scope: ScopeOption = None,
    reason: Annotated[str, typer.Option(help="Why (required to explain).")] = "",
    user: Annotated[str, typer.Option(help="For assign: the user's e-mail.")] = "",
    receipt: Annotated[
        str, typer.Option(help="For reverse_duplicate: the receipt to reverse.")
    ] = "",
    invoice: Annotated[str, typer.Option(help="For post_receipt: apply to this invoice.")] = "",
    on_account: Annotated[
        bool, typer.Option(help="For post_receipt: post it on the customer's account.")
    ] = False,
) -> None:
    """Resolve a break; every action is audited and kept in the break's history."""
    scope_id = _scope_id(scope)
    runtime = _runtime()
    me = cli_principal()
    try:
        if action == "explain":
            with runtime.db.transaction() as session:
                done = resolutions.explain(session, me, scope_id, break_id, reason)
        elif action == "assign":
            with runtime.db.transaction() as session:
                done = resolutions.assign(session, me, scope_id, break_id, user)
        elif action == "post_receipt":
            done = asyncio.run(
                resolutions.post_and_confirm(
                    runtime,
                    me,
                    scope_id,
                    break_id,
                    trigger="cli",
                    on_account=on_account,
                    invoice_number=invoice,
                    note=reason,
                )
            )
        elif action == "reverse_duplicate":
            done = asyncio.run(
                resolutions.reverse_duplicate(runtime, me, scope_id, break_id, receipt, note=reason)
            )
        else:
            raise _fail(f"--action: {action!r} is not one of {', '.join(resolutions.ACTIONS)}")
    except ReconRefused as refused:
        raise _fail(f"{refused.field}: {refused}") from None
    except UpstreamError as exc:
        raise _fail(str(exc)) from None
    out.print(done.message)


@recon_app.command("import-statement")
def import_statement(
    file: Annotated[Path, typer.Argument(help="BAI2, CAMT.053, OFX, or CSV bank statement.")],
    scope: ScopeOption = None,
    csv_mapping: Annotated[
        Path | None,
        typer.Option(help="For CSV: a JSON column mapping (saved for the next import)."),
    ] = None,
) -> None:
    """Import a bank statement: all of it or nothing; the same file twice counts once."""
    scope_id = _scope_id(scope)
    try:
        data = file.read_bytes()
        mapping = (
            CsvMapping.model_validate(json.loads(csv_mapping.read_text("utf-8")))
            if csv_mapping is not None
            else None
        )
    except OSError as exc:
        raise _fail(f"{exc.filename}: {exc.strerror}") from None
    except (ValueError, ValidationError) as exc:
        raise _fail(f"--csv-mapping: {exc}") from None
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            result = do_import(
                session,
                cli_principal(),
                get_scope(session, scope_id),
                data,
                file.name,
                csv_mapping=mapping,
            )
    except ReconRefused as refused:
        err.print(f"[red]{file.name}: {refused}[/red]")
        err.print("Nothing was imported.")
        raise typer.Exit(1) from None
    out.print(result.message)


@recon_app.command("close")
def close(
    period: Annotated[str, typer.Argument(help="The month to close, YYYY-MM.")],
    scope: ScopeOption = None,
    note: Annotated[str, typer.Option(help="A note kept with the sign-off.")] = "",
) -> None:
    """Sign off and lock a period (refused while breaks dated in it are open)."""
    scope_id = _scope_id(scope)
    runtime = _runtime()
    me = cli_principal()
    try:
        with runtime.db.transaction() as session:
            closed = close_period(session, me, get_scope(session, scope_id), period, note=note)
            text = f"Period {closed.period} closed and signed off by {closed.signed_off_by}"
    except ReconRefused as refused:
        raise _fail(f"{refused.field}: {refused}") from None
    out.print(text)


@recon_app.command("reopen")
def reopen(
    period: Annotated[str, typer.Argument(help="The month to reopen, YYYY-MM.")],
    reason: Annotated[str, typer.Option(help="Why it is reopened (required, audited).")],
    scope: ScopeOption = None,
) -> None:
    """Reopen a closed period, with the reason."""
    scope_id = _scope_id(scope)
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            found = reopen_period(
                session, cli_principal(), get_scope(session, scope_id), period, reason=reason
            )
            text = f"Period {found.period} reopened: {found.reopen_reason}"
    except ReconRefused as refused:
        raise _fail(f"{refused.field}: {refused}") from None
    out.print(text)


def _limit(text: str | None, name: str, *, money: bool) -> int | None:
    if text is None or text.strip().lower() in ("off", "none", ""):
        return None
    try:
        return Money.parse(text, "USD").minor if money else int(text)
    except (MoneyError, ValueError):
        fix = "an amount like 500.00" if money else "a whole number"
        raise ReconRefused(name, f"{text!r}: give {fix}, or off") from None


@recon_app.command("settings")
def settings(
    scope: ScopeOption = None,
    fee: Annotated[
        list[str] | None,
        typer.Option(
            help="Expected card fee, BRAND=PERCENT%+FIXED (visa=1.80%+0.10, amex=2.9%, "
            "other=2.9%+0.30); repeat for several brands; BRAND=default goes back."
        ),
    ] = None,
    alert_breaks: Annotated[
        str | None, typer.Option(help="E-mail when this many breaks are unexplained (or off).")
    ] = None,
    alert_amount: Annotated[
        str | None,
        typer.Option(
            help="E-mail when unexplained breaks reach this amount, e.g. 500.00 (or off)."
        ),
    ] = None,
) -> None:
    """Show or change a scope's expected fee schedule and alert threshold."""
    scope_id = _scope_id(scope)
    runtime = _runtime()
    try:
        fees: dict[str, Any] | None = None
        if fee:
            fees = {}
            for item in fee:
                brand, sep, rate = item.partition("=")
                key = brand_key(brand)
                if not sep or not brand.strip():
                    raise ReconRefused("fee", f"{item!r}: write BRAND=RATE, e.g. visa=1.80%+0.10")
                if rate.strip().lower() == "default":
                    fees[key] = None
                    continue
                parsed = parse_rate(rate, f"fee_schedule.{key}")
                fees[key] = {"percent_bp": parsed.percent_bp, "fixed_minor": parsed.fixed_minor}
        alert: dict[str, Any] | None = None
        if alert_breaks is not None or alert_amount is not None:
            alert = {}
            if alert_breaks is not None:
                alert["unexplained_breaks"] = _limit(alert_breaks, "alert_breaks", money=False)
            if alert_amount is not None:
                alert["unexplained_minor"] = _limit(alert_amount, "alert_amount", money=True)
        with runtime.db.transaction() as session:
            found = update_settings(
                session, scope_id, actor=cli_principal().actor, fee_schedule=fees, alert=alert
            )
            schedule = schedule_of(found)
            limits = alert_settings(found)
            currency = found.currency
    except ReconRefused as refused:
        raise _fail(f"{refused.field}: {refused}") from None
    table = Table("card brand", "percent", "fixed", title="Expected card fees (per sale)")
    for brand, brand_fee in sorted(schedule.brands.items()):
        percent, fixed = brand_fee.text().split("+")
        table.add_row(brand, percent, fixed)
    out.print(table)
    amount = limits["unexplained_minor"]
    out.print(
        f"Alert at {limits['unexplained_breaks'] or 'no limit of'} unexplained breaks"
        + (f" or {Money(amount, currency).format_display()}" if amount else "")
    )


recon_app.add_typer(rules_app, name="rules")
