"""The ``ledgerlink`` command line.

Every command reads the same settings as the server (``LEDGERLINK_*`` environment
variables and ``ledgerlink.toml``), so what runs here runs against the same database.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, ClassVar, NoReturn

import typer
import typer.main
from rich.table import Table
from sqlalchemy import select
from typer import _click
from typer.core import TyperGroup

from ledgerlink import __version__
from ledgerlink.connectors import registry
from ledgerlink.connectors.checks import run_check
from ledgerlink.identity.principal import cli_principal
from ledgerlink.jobs.worker import run_worker
from ledgerlink.logs import configure_console_logging
from ledgerlink.members.commands import link_app, members_app
from ledgerlink.payments.commands import payments_app
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.commands import sandbox_app
from ledgerlink.sandbox.supervisor import Supervisor, installed_simulators, stop_children_on_sigterm
from ledgerlink.settings import Settings
from ledgerlink.store import audit_checks
from ledgerlink.store.backup_commands import backup, restore
from ledgerlink.store.models import AuditEntry, Connection
from ledgerlink.sync.commands import sync_app
from ledgerlink.terminal import err, out
from ledgerlink.terminal import runtime as _runtime
from ledgerlink.terminal import settings as _settings
from ledgerlink.vault import VaultError, new_key, rotate


class DeferredGroup(TyperGroup):
    """A sub-command group whose module is imported only when one of its commands runs (or
    its own ``--help``): ``ledgerlink --help`` and every other command start without it.
    ``target`` is ``"package.module:typer_app"``; the help shown in the command list is
    the registration's (``deferred``), so listing the group imports nothing."""

    target: ClassVar[str]

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: _click.Context | None = None,
        **extra: Any,
    ) -> _click.Context:
        return self.load().make_context(info_name, args, parent=parent, **extra)

    def load(self) -> TyperGroup:
        module, _, attribute = self.target.partition(":")
        sub_app = getattr(importlib.import_module(module), attribute)
        group = typer.main.get_group(sub_app)
        group.name, group.help = self.name, self.help
        return group


def deferred(target: str, help: str) -> typer.Typer:
    """A placeholder for the Typer app at ``target`` (see ``DeferredGroup``)."""
    group_class = type("DeferredGroup", (DeferredGroup,), {"target": target})
    return typer.Typer(cls=group_class, help=help, no_args_is_help=True)


app = typer.Typer(
    help="ledgerlink: keeps members, Sage Business Cloud Accounting, Sage 500 and PayTrace "
    "in agreement. Run a command with --help to see what it does.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
vault_app = typer.Typer(
    help="Manage the keys that encrypt stored credentials.", no_args_is_help=True
)
audit_app = typer.Typer(help="Inspect and verify the hash-chained audit log.", no_args_is_help=True)
# deferred: identity.passwords hashes its timing dummy with argon2 on import (0.2-0.5 s)
app.add_typer(
    deferred(
        "ledgerlink.identity.commands:user_app", help="Manage portal users and their API tokens."
    ),
    name="user",
)
app.add_typer(vault_app, name="vault")
app.add_typer(audit_app, name="audit")
app.add_typer(sandbox_app, name="sandbox")
connection_app = typer.Typer(
    help="Connections to SBC, PayTrace and Sage 500: list them and test them.",
    no_args_is_help=True,
)
app.add_typer(connection_app, name="connection")
app.add_typer(members_app, name="members")
app.add_typer(link_app, name="link")
app.add_typer(sync_app, name="sync")
app.add_typer(payments_app, name="payments")
# deferred: the reconciliation modules load polars, lxml and xlsxwriter (about 0.9 s)
app.add_typer(
    deferred(
        "ledgerlink.recon.commands:recon_app",
        help="Reconciliation: PayTrace ↔ ledger ↔ settlement batches ↔ bank deposits.",
    ),
    name="recon",
)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]{message}[/red]")
    raise typer.Exit(code)


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(__version__)
        raise typer.Exit()


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (and procrastinate's, on PostgreSQL)."""
    from ledgerlink.store.migrate import upgrade  # deferred: alembic and mako, 0.6 s

    runtime = _runtime()
    upgrade(runtime.db)
    out.print(f"Database is up to date ({runtime.db.backend}).")


app.command()(backup)
app.command()(restore)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default from settings).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default 8000).")] = None,
    worker: Annotated[
        bool, typer.Option(help="Run the embedded job runner in this process (SQLite only).")
    ] = True,
) -> None:
    """Serve the portal and REST API. On SQLite the job runner runs inside this process."""
    import uvicorn

    from ledgerlink.store.migrate import pending_revisions  # deferred: alembic and mako, 0.6 s
    from ledgerlink.web.app import create_app  # deferred: every route, FastAPI, polars: 3 s

    runtime = _runtime()
    settings = runtime.settings
    if not worker:
        settings.run_embedded_worker = False
    if pending_revisions(runtime.db):
        _fail("The database schema is behind this version: run `ledgerlink migrate` first.")
    application = create_app(runtime=runtime)
    uvicorn.run(
        application,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        **_proxy_options(settings),
    )


def _proxy_options(settings: Settings) -> dict[str, Any]:
    """Forwarded headers are believed only from the configured trusted proxies (uvicorn
    would otherwise believe any client connecting from 127.0.0.1), so the client address
    and scheme the app sees are the peer's own unless a trusted proxy says otherwise."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}


@app.command()
def worker() -> None:
    """Run background jobs: the embedded runner on SQLite, procrastinate on PostgreSQL.
    Run as many as you like; a worker killed mid-job loses nothing (the job runs again)."""
    runtime = _runtime()
    run_worker(runtime.settings)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for the portal.")] = 8000,
    sandboxes: Annotated[
        bool, typer.Option(help="Start the SBC, PayTrace and Sage 500 simulators too.")
    ] = True,
) -> None:
    """Run the demo: migrates the embedded database, starts the three simulators, adds
    demo users and connections to them, and serves the portal. Prints the URL and logins;
    the console shows warnings only, the full JSON log goes to <var_dir>/logs/demo.log."""
    import uvicorn

    from ledgerlink import demo as demo_data  # deferred: loads recon (polars) and argon2
    from ledgerlink.invoice_requests.demo import (  # deferred: with the demo data
        ensure_demo_choice,
    )
    from ledgerlink.store.migrate import upgrade  # deferred: alembic and mako, 0.6 s
    from ledgerlink.web.app import create_app  # deferred: every route, FastAPI, polars: 3 s

    settings = _settings()
    log_file = settings.var_dir / "logs" / "demo.log"
    configure_console_logging(log_file, settings.log_level)
    runtime = Runtime(settings)
    upgrade(runtime.db)
    supervisor = Supervisor(runtime.settings, runtime.settings.sandbox_dir / "logs")
    stop_children_on_sigterm()
    try:
        with runtime.db.transaction() as session:
            demo_data.ensure_users(session)
            added = demo_data.ensure_members(session)
            ensure_demo_choice(session)  # M00001: e-mail a pay link for each new invoice
        if added:
            out.print(f"Added {added} demo members (the same people the simulators hold).")
        if sandboxes:
            out.print("Starting the simulators (first start seeds their data)…")
            supervisor.start(installed_simulators())
            where = supervisor.wait_ready(timeout=120)
            with runtime.db.transaction() as session:
                demo_data.ensure_connections(
                    runtime, session, demo_data.sandbox_connections(runtime, where)
                )
            connected = demo_data.connect_sbc_sandbox(runtime, where)
            if connected:
                out.print(f"  {connected}")
            linking_note = demo_data.link_demo_members(runtime)
            if linking_note:
                out.print(f"  {linking_note}")
            payments_note = demo_data.wire_payments(runtime, where)
            if payments_note:
                out.print(f"  {payments_note}")
            recon_note = demo_data.reconcile_demo(runtime, where)
            if recon_note:
                out.print(f"  {recon_note}")
            for name, address in where.items():
                out.print(f"  simulator {name:<9} {address.base_url}")
        url = f"http://{runtime.settings.host}:{port}/"
        out.print(f"\n[bold]ledgerlink demo[/bold] is starting at [link={url}]{url}[/link]")
        for email, role, _ in demo_data.USERS:
            out.print(f"  {role.value:<9} {email}  password: {demo_data.PASSWORD}")
        out.print(
            f"Warnings show here; the full log (JSON lines) is in {log_file.resolve()}"
            + (
                f", the simulators' in {(runtime.settings.sandbox_dir / 'logs').resolve()}"
                if sandboxes
                else ""
            )
            + "."
        )
        out.print("Press Ctrl-C to stop.\n")
        uvicorn.run(
            create_app(runtime=runtime),
            host=runtime.settings.host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            **_proxy_options(runtime.settings),
        )
    except RuntimeError as exc:
        _fail(str(exc))
    finally:
        supervisor.stop()


# ---- vault -------------------------------------------------------------------------------


@vault_app.command("rotate")
def vault_rotate() -> None:
    """Re-encrypt every stored credential under a new key and retire the old ones.
    With LEDGERLINK_VAULT_KEYS, put the new key first (see `vault new-key`) and run this."""
    runtime = _runtime()
    try:
        report = rotate(runtime.settings, runtime.db, actor=cli_principal().actor)
    except VaultError as exc:
        _fail(str(exc))
    out.print(str(report))


@vault_app.command("new-key")
def vault_new_key() -> None:
    """Print a new Fernet key (for LEDGERLINK_VAULT_KEYS)."""
    out.print(new_key())


# ---- audit -------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    expect_head: Annotated[
        str | None,
        typer.Option(
            help="A head hash recorded earlier (e.g. from a previous verify); detects a "
            "truncated or rewritten chain."
        ),
    ] = None,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Check only the entries written since the newest signed checkpoint "
            "(milliseconds) instead of the whole chain.",
        ),
    ] = False,
) -> None:
    """Check every entry's hash and link, and the chain against its signed checkpoints
    (<var_dir>/audit-anchors/); names the first edited, deleted or reordered entry.
    A chain that verifies gets a new checkpoint."""
    if incremental and expect_head is not None:
        _fail("--expect-head needs a full check; leave out --incremental", code=2)
    report = _audit_check(incremental, expect_head)
    if report.ok:
        anchored = (
            f"; checkpoint written at entry {report.anchored_seq}" if report.anchored_seq else ""
        )
        out.print(
            f"[green]OK[/green]: {report.entries} entries, head {report.head_hash} "
            f"({report.rows_read} read{anchored})"
        )
        return
    _fail(f"TAMPERED: {report.problem}", code=3)


@audit_app.command("anchor")
def audit_anchor() -> None:
    """Write a signed checkpoint of the audit chain now (after checking the entries written
    since the last one), to <var_dir>/audit-anchors/checkpoints.jsonl."""
    report = _audit_check(True, None)
    if not report.ok:
        _fail(f"TAMPERED: {report.problem} No checkpoint was written.", code=3)
    if report.anchored_seq is not None:
        out.print(
            f"[green]Checkpoint written[/green]: entry {report.anchored_seq}, hash "
            f"{report.head_hash}, in {report.anchor_file}"
        )
    else:
        out.print(
            f"Already anchored: the newest checkpoint is at entry {report.entries}, the head "
            f"of the chain ({report.anchor_file})."
        )


def _audit_check(incremental: bool, expect_head: str | None) -> Any:
    runtime = _runtime()
    try:
        return audit_checks.check(
            runtime.settings,
            runtime.db,
            runtime.vault,
            kind="incremental" if incremental else "full",
            checked_by=cli_principal().actor,
            expect_head=expect_head,
        )
    except ValueError as exc:
        _fail(f"--expect-head: {exc}", code=2)
    except VaultError as exc:
        _fail(str(exc))


@audit_app.command("show")
def audit_show(
    limit: Annotated[int, typer.Option(help="How many of the newest entries.")] = 20,
) -> None:
    """Show the newest audit entries."""
    runtime = _runtime()
    table = Table("#", "when (UTC)", "who", "what", "record")
    with runtime.db.read() as session:
        for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)):
            table.add_row(
                str(e.seq),
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                e.actor,
                e.action,
                f"{e.entity_type} {e.entity_id or ''}",
            )
    out.print(table)


def _find_connection(session: Any, which: str) -> Any:
    query = select(Connection)
    found = (
        session.scalars(query.where(Connection.name == which)).all()
        or session.scalars(query.where(Connection.kind == which)).all()
    )
    if not found:
        _fail(f"No connection named or of kind {which!r}. `ledgerlink connection list` shows them.")
    if len(found) > 1:
        names = ", ".join(repr(c.name) for c in found)
        _fail(f"{len(found)} {which} connections ({names}); give the name instead.")
    return found[0]


@connection_app.command("list")
def connection_list() -> None:
    """Show configured connections, whether they are active and authorised."""
    runtime = _runtime()
    table = Table("id", "kind", "name", "active", "authorisation")
    with runtime.db.read() as session:
        for row in session.scalars(select(Connection).order_by(Connection.name)):
            interactive = (
                registry.is_known(row.kind) and registry.descriptor(row.kind).interactive_auth
            )
            authorisation = row.auth_status.replace("_", " ") if interactive else "n/a"
            table.add_row(
                str(row.id), row.kind, row.name, "yes" if row.is_active else "no", authorisation
            )
    out.print(table)


@connection_app.command("test")
def connection_test(
    which: Annotated[
        str, typer.Argument(help="Connection name, or its kind: sbc, paytrace, sage500.")
    ],
) -> None:
    """Check reachability, credentials, permissions and the chosen business or company;
    each check passes or fails with a reason. Exits 1 when any check fails."""
    runtime = _runtime()
    with runtime.db.read() as session:
        connection = _find_connection(session, which)
    results = run_check(runtime, connection)
    for result in results:
        mark = "[green]PASS[/green]" if result.ok else "[red]FAIL[/red]"
        out.print(f"{mark} {result.name}: {result.detail}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
