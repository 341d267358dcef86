"""``ledgerlink sync …``: plan, run, apply a plan, cancel, and read the log from a terminal."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import select

from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.csv_cells import SafeCsvWriter
from ledgerlink.identity.principal import cli_principal
from ledgerlink.members.linking import LinkError, connection_by_name, default_ledger_connection
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import SyncRecord, SyncRun
from ledgerlink.sync import runs, schedules, views
from ledgerlink.terminal import err, out
from ledgerlink.terminal import failure as _fail
from ledgerlink.terminal import runtime as _runtime

sync_app = typer.Typer(
    help="Keep members and the ledgers in agreement: member details (both ways), "
    "transaction history and balances.",
    no_args_is_help=True,
)

ConnectionOption = Annotated[
    str | None,
    typer.Option("--connection", "-c", help="Connection name (default: the only ledger)."),
]
RemapOption = Annotated[
    bool,
    typer.Option(
        "--remap",
        help="After a mapping spec changed: write every linked customer the way the member → "
        "customer spec now says (member details only).",
    ),
]
DataSetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--data-set",
        "-d",
        help="member_details, transactions or balances (repeat; default: the chosen ones).",
    ),
]


def _connection(runtime: Runtime, name: str | None) -> Connection:
    try:
        with runtime.db.read() as session:
            found = (
                connection_by_name(session, name) if name else default_ledger_connection(session)
            )
            session.expunge(found)
            return found
    except LinkError as exc:
        raise _fail(exc.message, 2) from None


def _start(
    runtime: Runtime,
    connection: Connection,
    data_sets: list[str] | None,
    trigger: str = "cli",
    **kwargs: Any,
) -> int:
    try:
        with runtime.db.transaction() as session:
            return runs.start(
                session, None, cli_principal(), connection.id, data_sets, trigger=trigger, **kwargs
            ).id
    except runs.SyncError as exc:
        raise _fail(str(exc), 2) from None


def _execute(runtime: Runtime, connection: Connection, run_id: int, *, show_progress: bool) -> Any:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not show_progress,
    )
    task_id = progress.add_task("sync", total=None)

    def moved(state: runs.Progress) -> None:
        progress.update(
            task_id, description=state.data_set, completed=state.done, total=state.total or None
        )

    try:
        with progress:
            return asyncio.run(
                runs.execute_for(runtime, run_id, cli_principal(), on_progress=moved)
            )
    except (UpstreamError, runs.SyncError) as exc:
        raise _fail(f"run {run_id} failed: {getattr(exc, 'message', exc)}") from None


def _records_table(runtime: Runtime, run_id: int, status: str | None = None) -> Table:
    table = Table("member", "direction", "action", "status", "fields (before → after)", "message")
    with runtime.db.read() as session:
        query = select(SyncRecord).where(SyncRecord.run_id == run_id).order_by(SyncRecord.id)
        if status:
            query = query.where(SyncRecord.status == status)
        for record in session.scalars(query):
            fields = "; ".join(
                f"{name}: {change.get('before', '')!r} → {change.get('after', '')!r}"
                for name, change in record.changes.items()
                if not name.startswith("_") and "after" in change
            )
            table.add_row(
                record.record_key,
                record.direction,
                record.action,
                record.status,
                fields,
                record.message or record.fix,
            )
    return table


def _summary(run: Any) -> str:
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(run.counts.items()))
    line = f"run {run.id}: {run.status} ({counts or 'nothing to do'})"
    if run.mapping_versions:
        line += "\nmapped with " + ", ".join(sorted(run.mapping_versions.values()))
    return line


@sync_app.command("plan")
def plan(
    connection: ConnectionOption = None, data_set: DataSetOption = None, remap: RemapOption = False
) -> None:
    """Dry run: show what a sync would create, update, delete and where fields conflict,
    field by field. Apply it with `ledgerlink sync apply PLAN_ID`."""
    runtime = _runtime()
    target = _connection(runtime, connection)
    run_id = _start(runtime, target, data_set, dry_run=True, remap=remap)
    run = _execute(runtime, target, run_id, show_progress=sys.stderr.isatty())
    out.print(_records_table(runtime, run_id))
    out.print(_summary(run))
    out.print(f"Apply exactly this plan with: ledgerlink sync apply {run_id}")


@sync_app.command("apply")
def apply(plan_id: Annotated[int, typer.Argument(help="The plan's run id.")]) -> None:
    """Apply a plan; if a planned member changed since, make a new plan instead."""
    runtime = _runtime()
    with runtime.db.read() as session:
        planned = session.get(SyncRun, plan_id)
        if planned is None or not planned.dry_run:
            raise _fail(f"{plan_id} is not a plan; make one with `ledgerlink sync plan`", 2)
        if planned.status != "planned":
            raise _fail(f"plan {plan_id} is {planned.status}; make a new one", 2)
        connection_id = planned.connection_id
    target = _connection_by_id(runtime, connection_id)
    run_id = _start(runtime, target, ["member_details"], "plan", source_run_id=plan_id)
    run = _execute(runtime, target, run_id, show_progress=sys.stderr.isatty())
    replan = run.counts.get("replanned_as")
    if replan:
        fresh = _execute(runtime, target, int(replan), show_progress=False)
        out.print(_records_table(runtime, fresh.id))
        raise _fail(
            f"plan {plan_id} was not applied: members changed since it was made. This is the "
            f"new plan {fresh.id}; apply it with `ledgerlink sync apply {fresh.id}`"
        )
    out.print(_summary(run))


def _connection_by_id(runtime: Runtime, connection_id: int) -> Connection:
    with runtime.db.read() as session:
        found = session.get(Connection, connection_id)
        assert found is not None
        session.expunge(found)
        return found


@sync_app.command("run")
def run(
    connection: ConnectionOption = None,
    data_set: DataSetOption = None,
    resume: Annotated[
        int | None, typer.Option("--resume", help="Continue an interrupted run by id.")
    ] = None,
    retry_failed: Annotated[
        int | None,
        typer.Option("--retry-failed", help="Run again only the failed records of this run."),
    ] = None,
    remap: RemapOption = False,
) -> None:
    """Sync now, with a progress bar; exits 1 when any record failed."""
    runtime = _runtime()
    target = _connection(runtime, connection)
    if resume is not None:
        run_id = resume
    elif retry_failed is not None:
        run_id = _start(runtime, target, ["member_details"], "retry", source_run_id=retry_failed)
    else:
        run_id = _start(runtime, target, data_set, remap=remap)
    finished = _execute(runtime, target, run_id, show_progress=sys.stderr.isatty())
    out.print(_summary(finished))
    if finished.counts.get("failed"):
        out.print(_records_table(runtime, run_id, status="failed"))
        raise typer.Exit(1)


@sync_app.command("cancel")
def cancel(run_id: Annotated[int, typer.Argument(help="The run to stop.")]) -> None:
    """Ask a running sync to stop after the page it is on."""
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            runs.request_cancel(session, cli_principal(), run_id)
    except runs.SyncError as exc:
        raise _fail(str(exc), 2) from None
    out.print(f"run {run_id}: cancel requested")


@sync_app.command("log")
def sync_log(
    run_id: Annotated[
        int | None, typer.Argument(help="One run's records; none lists recent runs.")
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed records.")] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Records as CSV on standard output.")
    ] = False,
) -> None:
    """Recent runs, or one run's records (what changed, what failed and how to fix it)."""
    runtime = _runtime()
    if run_id is None:
        table = Table(
            "run", "connection", "trigger", "data sets", "status", "counts", "started", "finished"
        )
        with runtime.db.read() as session:
            for found in session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(30)):
                table.add_row(
                    str(found.id),
                    str(found.connection_id),
                    found.trigger,
                    ", ".join(found.data_sets),
                    found.status,
                    ", ".join(f"{k} {v}" for k, v in sorted(found.counts.items())),
                    str(found.started_at or ""),
                    str(found.finished_at or ""),
                )
        out.print(table)
        return
    if as_csv:
        writer = SafeCsvWriter(sys.stdout)  # no cell can start a spreadsheet formula
        writer.writerow(
            ["run", "member", "data_set", "direction", "action", "status", "message", "fix"]
        )
        with runtime.db.read() as session:
            query = select(SyncRecord).where(SyncRecord.run_id == run_id).order_by(SyncRecord.id)
            if failed:
                query = query.where(SyncRecord.status == "failed")
            for record in session.scalars(query):
                writer.writerow(
                    [
                        run_id,
                        record.record_key,
                        record.data_set,
                        record.direction,
                        record.action,
                        record.status,
                        record.message,
                        record.fix,
                    ]
                )
        return
    out.print(_records_table(runtime, run_id, status="failed" if failed else None))


schedule_app = typer.Typer(help="Syncs that run by themselves.", no_args_is_help=True)
sync_app.add_typer(schedule_app, name="schedule")


@schedule_app.command("add")
def schedule_add(
    connection: ConnectionOption = None,
    daily: Annotated[str | None, typer.Option(help="Every day at HH:MM.")] = None,
    weekly: Annotated[str | None, typer.Option(help="Every week: 'monday 02:30'.")] = None,
    cron: Annotated[
        str | None, typer.Option(help="A cron expression, e.g. '30 2 * * 1-5'.")
    ] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the times.")] = "UTC",
    data_set: DataSetOption = None,
) -> None:
    """Add a schedule (one of --daily, --weekly or --cron); prints its next run."""
    chosen = [o for o in (daily, weekly, cron) if o]
    if len(chosen) != 1:
        raise _fail("give exactly one of --daily HH:MM, --weekly 'monday HH:MM' or --cron EXPR", 2)
    runtime = _runtime()
    target = _connection(runtime, connection)
    weekday, _, at = (weekly or "").partition(" ")
    try:
        with runtime.db.transaction() as session:
            schedule = schedules.add(
                session,
                cli_principal(),
                target.id,
                kind="daily" if daily else "weekly" if weekly else "cron",
                at=daily or at,
                weekday=weekday,
                cron=cron or "",
                timezone=timezone,
                data_sets=data_set,
            )
            out.print(f"schedule {schedule.id}: next run {schedule.next_run_at:%Y-%m-%d %H:%M} UTC")
    except runs.SyncError as exc:
        raise _fail(str(exc), 2) from None


@schedule_app.command("list")
def schedule_list() -> None:
    """Every schedule with its next run and last outcome."""
    runtime = _runtime()
    table = Table("id", "connection", "when", "time zone", "data sets", "next run (UTC)", "last")
    with runtime.db.read() as session:
        for connection_id, found in views.schedules_of(session).items():
            for s in found:
                table.add_row(
                    str(s["id"]),
                    str(connection_id),
                    s["when"],
                    s["timezone"],
                    ", ".join(s["data_sets"]),
                    f"{s['next_run_at']:%Y-%m-%d %H:%M}",
                    s["last_outcome"],
                )
    out.print(table)


@schedule_app.command("remove")
def schedule_remove(schedule_id: Annotated[int, typer.Argument(help="The schedule's id.")]) -> None:
    """Remove a schedule (runs it already started go on)."""
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            schedules.remove(session, cli_principal(), schedule_id)
    except runs.SyncError as exc:
        raise _fail(str(exc), 2) from None
    out.print(f"schedule {schedule_id} removed")
