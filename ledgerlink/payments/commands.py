"""``ledgerlink payments …``: process and poll now, read the queue, act on exceptions,
import a dispute report, charge a stored card."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ledgerlink.identity.principal import cli_principal
from ledgerlink.payments import disputes
from ledgerlink.payments.inbox import EventRefused
from ledgerlink.payments.jobs import drain
from ledgerlink.payments.poller import poll_due
from ledgerlink.payments.resolutions import ActionRefused, take_action
from ledgerlink.payments.views import exception_rows, recent_events
from ledgerlink.terminal import err, out
from ledgerlink.terminal import failure as _fail
from ledgerlink.terminal import runtime as _runtime

payments_app = typer.Typer(
    help="Card payments: PayTrace events posted to the ledger, the exceptions queue.",
    no_args_is_help=True,
)


@payments_app.command("process")
def process(
    idle: Annotated[
        float, typer.Option(help="Seconds to wait for new events before stopping.")
    ] = 0.0,
) -> None:
    """Post every payment event that is due, now (the service does this by itself)."""
    counts = asyncio.run(drain(_runtime(), idle_seconds=idle))
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing due"
    out.print(f"Processed: {summary}")


@payments_app.command("poll")
def poll() -> None:
    """Read PayTrace's exports and settlement batches now, for every PayTrace connection."""
    results = asyncio.run(poll_due(_runtime(), force=True))
    if not results:
        raise _fail("There is no PayTrace connection to poll.")
    failed = False
    for result in results:
        if result.error:
            failed = True
            err.print(f"[red]Connection {result.connection_id}: {result.error}[/red]")
        else:
            out.print(
                f"Connection {result.connection_id}: {result.read} transactions read, "
                f"{result.new} new, {result.batches} new settlement batches"
            )
    if failed:
        raise typer.Exit(1)


@payments_app.command("list")
def list_events(
    status: Annotated[
        str | None,
        typer.Option(
            help="received, posted, exception or ignored; for silent posts (hints) also "
            "confirmed or unverified."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The newest payment events and what became of them."""
    runtime = _runtime()
    with runtime.db.read() as session:
        rows = recent_events(session, status=status, limit=limit)
    table = Table("id", "transaction", "kind", "amount", "invoice", "status", "message")
    for row in rows:
        table.add_row(
            str(row.id),
            row.transaction_id,
            row.kind,
            row.amount,
            row.invoice_number,
            row.status,
            row.message or "",
        )
    out.print(table)


@payments_app.command("exceptions")
def exceptions(
    all_: Annotated[bool, typer.Option("--all", help="Resolved and ignored ones too.")] = False,
) -> None:
    """The exceptions queue: why each payment was not posted and what to do."""
    runtime = _runtime()
    with runtime.db.read() as session:
        rows = exception_rows(session, status=None if all_ else "open", limit=500)
    table = Table("id", "transaction", "reason (or how it was resolved)", "fix", "status")
    for row in rows:
        if row.status == "open":
            table.add_row(str(row.id), row.transaction_id, row.reason, row.fix, row.status)
        else:  # the reason belongs to an earlier try: say how it ended
            table.add_row(str(row.id), row.transaction_id, row.resolution or "", "", row.status)
    out.print(table)


@payments_app.command("resolve")
def resolve(
    exception_id: Annotated[int, typer.Argument(help="The exception's id.")],
    action: Annotated[str, typer.Option(help="retry, apply_to_invoice, on_account or ignore.")],
    invoice: Annotated[str, typer.Option(help="For apply_to_invoice: the invoice number.")] = "",
    customer: Annotated[str, typer.Option(help="For on_account: the customer number.")] = "",
    note: Annotated[str, typer.Option(help="Why (required to ignore).")] = "",
) -> None:
    """Act on an exception; the payment then goes through the normal path again."""
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            result = take_action(
                session,
                runtime.jobs,
                cli_principal(),
                exception_id,
                action,
                invoice_number=invoice,
                customer_number=customer,
                note=note,
            )
    except ActionRefused as refused:
        raise _fail(f"{refused.field}: {refused.message}") from None
    out.print(result.message)


@payments_app.command("import-disputes")
def import_disputes(
    report: Annotated[Path, typer.Argument(help="PayTrace dispute report (CSV or JSON).")],
    connection: Annotated[int | None, typer.Option(help="PayTrace connection id.")] = None,
) -> None:
    """Import chargebacks and dispute outcomes; importing a report twice changes nothing."""
    try:
        result = disputes.import_file(_runtime(), report.read_bytes(), report.name, connection)
    except (OSError, EventRefused) as exc:
        why = exc.message if isinstance(exc, EventRefused) else exc
        raise _fail(f"{report}: {why}") from None
    out.print(
        f"{result.rows} rows: {result.new_events} new events, {result.repeated} already imported"
    )
    for problem in result.problems:
        err.print(f"[red]line {problem.line}, {problem.field}: {problem.message}[/red]")
    if result.problems:
        raise typer.Exit(1)
