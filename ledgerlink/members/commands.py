"""``ledgerlink members …`` and ``ledgerlink link …``: the registry and linking from the
shell, for scripts and for sites that load members from another system nightly.

The commands call the same services as the API and portal, act as the shell user
(``cli:<user>`` in the audit log) and exit non-zero when anything was refused.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ledgerlink.blocking import in_thread
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.identity.principal import cli_principal
from ledgerlink.members import bulk, csv_io, linking
from ledgerlink.members.search import MemberQuery, SearchInvalid, matching_ids
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection
from ledgerlink.terminal import err, out
from ledgerlink.terminal import failure as _fail
from ledgerlink.terminal import runtime as _runtime

members_app = typer.Typer(
    help="The member registry: import and export members as CSV.", no_args_is_help=True
)
link_app = typer.Typer(
    help="Link members to customer accounts: `link --member M00042 --create`, or "
    "`link bulk --without-account`.",
    invoke_without_command=True,
)


@members_app.command("import")
def import_members(
    file: Annotated[Path, typer.Argument(help="CSV file, UTF-8, header line first.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row, write nothing.")
    ] = False,
) -> None:
    """Import members; lists every bad row (line, field, fix) and imports the good ones."""

    if not file.is_file():
        raise _fail(f"{file} is not a file")
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            report = csv_io.import_csv(session, cli_principal(), file.read_bytes(), dry_run=dry_run)
    except csv_io.FileRefused as exc:
        for e in exc.errors:
            err.print(f"line {e.line}, {e.field}: {e.reason}")
        raise _fail("Nothing was imported.") from None
    finally:
        runtime.close()
    if report.errors:
        table = Table("line", "member", "field", "what to fix", title="Rows not imported")
        for e in report.errors:
            table.add_row(str(e.line), e.member_number, e.field, e.reason)
        err.print(table)
    verb = "would be" if dry_run else "were"
    out.print(
        f"{report.rows} row(s) read: {report.created} new, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.rejected_lines} rejected "
        f"({'nothing written' if dry_run else 'imported together'})."
        if report.rows
        else f"No rows {verb} in {file}."
    )
    if report.errors:
        raise typer.Exit(1)


@members_app.command("export")
def export_members(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Every member as CSV, in the form `members import` reads back unchanged."""

    runtime = _runtime()
    try:
        with runtime.db.read() as session:
            if output is None:
                for chunk in csv_io.export_csv(session):
                    sys.stdout.write(chunk)
            else:
                with output.open("w", encoding="utf-8", newline="") as handle:
                    for chunk in csv_io.export_csv(session):
                        handle.write(chunk)
                err.print(f"Wrote {output}.")
    finally:
        runtime.close()


def _connection(runtime: Runtime, name: str | None) -> Connection:
    with runtime.db.read() as session:
        try:
            if name:
                connection = linking.connection_by_name(session, name)
                return linking.ledger_connection(session, connection.id)
            return linking.default_ledger_connection(session)
        except linking.LinkError as exc:
            raise _fail(exc.message) from None


@link_app.callback()
def link(
    ctx: typer.Context,
    member: Annotated[str | None, typer.Option("--member", "-m", help="Member number.")] = None,
    create: Annotated[
        bool, typer.Option("--create", help="Create the customer in the ledger, then link it.")
    ] = False,
    customer_id: Annotated[
        str | None, typer.Option("--customer-id", help="Link this existing customer instead.")
    ] = None,
    connection: Annotated[
        str | None,
        typer.Option("--connection", "-c", help="Connection name (default: the only ledger)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Create even if likely duplicates exist.")
    ] = False,
    relink: Annotated[bool, typer.Option("--relink", help="Replace an existing link.")] = False,
) -> None:
    """Link one member: `--create` makes the customer; `--customer-id` links an existing one."""
    if ctx.invoked_subcommand is not None:
        return
    if member is None or create == (customer_id is not None):
        err.print(ctx.get_help())
        raise _fail("give --member and either --create or --customer-id", 2)

    runtime = _runtime()
    target = _connection(runtime, connection)

    async def work() -> linking.LinkOutcome:
        ledger = runtime.ledger_for(target)
        try:
            if create:
                return await linking.create_and_link(
                    runtime.db,
                    cli_principal(),
                    ledger,
                    member,
                    target.id,
                    force=force,
                    mappings=runtime.mappings,
                )
            return await linking.link_existing(
                runtime.db,
                cli_principal(),
                ledger,
                member,
                target.id,
                customer_id or "",
                relink=relink,
            )
        finally:
            await ledger.aclose()

    try:
        outcome = asyncio.run(work())
    except linking.LikelyDuplicates as exc:
        table = Table("customer id", "number", "name", "e-mail", "why", "linked to")
        for c in exc.candidates:
            table.add_row(
                c.customer.id,
                c.customer.number,
                c.customer.name,
                c.customer.email,
                ", ".join(c.reasons),
                c.linked_to or "",
            )
        err.print(table)
        raise _fail(
            f"{exc.message} Use --customer-id ID to link one, or --force to create anyway."
        ) from None
    except linking.LinkError as exc:
        raise _fail(exc.message) from None
    except UpstreamError as exc:
        raise _fail(f"{exc.system_name}: {exc.message}") from None
    finally:
        runtime.close()
    out.print(outcome.message)


@link_app.command("bulk")
def link_bulk(
    without_account: Annotated[
        bool,
        typer.Option("--without-account", help="Every member without an account in the ledger."),
    ] = False,
    member: Annotated[
        list[str] | None, typer.Option("--member", "-m", help="These members (repeat).")
    ] = None,
    connection: Annotated[
        str | None,
        typer.Option("--connection", "-c", help="Connection name (default: the only ledger)."),
    ] = None,
    level: Annotated[str | None, typer.Option(help="Only this membership level.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status, e.g. active.")] = None,
    background: Annotated[
        bool, typer.Option("--background", help="Enqueue the job for the workers and return.")
    ] = False,
    resume: Annotated[
        int | None, typer.Option("--resume", help="Continue an interrupted run by its id.")
    ] = None,
) -> None:
    """Create and link many members. Runs here with a progress bar (or as a job with
    --background); an interrupted run continues with --resume ID without duplicates."""

    if resume is None and not without_account and not member:
        raise _fail("choose the members: --without-account (with filters) or --member N", 2)
    runtime = _runtime()
    principal = cli_principal()
    try:
        if resume is not None:
            run_id = resume
            with runtime.db.read() as session:
                info = bulk.progress(session, run_id, items=0)
            target = _connection_by_id(runtime, int(info["connection_id"]))
        else:
            target = _connection(runtime, connection)
            with runtime.db.transaction() as session:
                if member:
                    ids = bulk.member_ids_for(session, member)
                    selection: dict[str, Any] = {"member_numbers": len(ids)}
                else:
                    query = MemberQuery(
                        without_account=True, connection_id=target.id, level=level, status=status
                    )
                    ids = matching_ids(session, query)
                    selection = {"without_account": True, "level": level, "status": status}
                if not ids:
                    out.print("Every selected member already has a customer account.")
                    return
                jobs = runtime.jobs if background else None
                run_id = bulk.start(session, jobs, principal, target.id, ids, selection).id
        if background:
            out.print(
                f"Bulk run {run_id} queued; follow it in the portal at /members/bulk/{run_id}."
            )
            return
        out.print(f"Bulk run {run_id} into {target.name}.")
        asyncio.run(_run_with_progress(runtime, run_id, principal))
        with runtime.db.read() as session:
            info = bulk.progress(session, run_id, items=5000)
    except (linking.LinkError, SearchInvalid) as exc:
        raise _fail(str(exc)) from None
    except UpstreamError as exc:
        raise _fail(
            f"{exc.system_name}: {exc.message}. Continue later with `ledgerlink link bulk "
            f"--resume {run_id}`."
        ) from None
    finally:
        runtime.close()
    problems = [i for i in info["items"] if i["status"] in ("failed", "skipped")]
    if problems:
        table = Table("member", "name", "result", "details", title="Needs attention")
        for i in problems:
            table.add_row(i["member_number"], i["member_name"], i["status"], i["message"] or "")
        err.print(table)
    counts = info["counts"]
    out.print(
        f"{counts['created']} created, {counts['linked']} linked to existing customers, "
        f"{counts['skipped']} skipped as likely duplicates, {counts['failed']} failed."
    )
    if counts["failed"]:
        raise typer.Exit(1)


def _connection_by_id(runtime: Runtime, connection_id: int) -> Connection:
    with runtime.db.read() as session:
        try:
            return linking.ledger_connection(session, connection_id)
        except linking.LinkError as exc:
            raise _fail(exc.message) from None


async def _run_with_progress(runtime: Runtime, run_id: int, principal: Any) -> None:
    total, _ = await in_thread(_bulk_counts, runtime, run_id)
    progress = Progress(
        TextColumn("create and link"), BarColumn(), MofNCompleteColumn(), console=err
    )

    async def watch(task_id: Any) -> None:
        while True:
            _, done = await in_thread(_bulk_counts, runtime, run_id)
            progress.update(task_id, completed=done)
            await asyncio.sleep(0.5)

    with progress:
        task_id = progress.add_task("bulk", total=total)
        watcher = asyncio.create_task(watch(task_id))
        try:
            await bulk.run_for(runtime, run_id, principal)
        finally:
            watcher.cancel()
        progress.update(task_id, completed=total)


def _bulk_counts(runtime: Runtime, run_id: int) -> tuple[int, int]:
    """(members in the run, members done)."""
    with runtime.db.read() as session:
        found = bulk.progress(session, run_id, items=0)
    return int(found["total"]), int(found["done"])
