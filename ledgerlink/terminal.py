"""What the command groups (members, link, sync, payments) share: the consoles, the
runtime as ``ledgerlink`` builds it, and a failure that names what went wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from ledgerlink.runtime import Runtime

out = Console()
err = Console(stderr=True)


def runtime() -> Runtime:
    from ledgerlink.cli import _runtime as cli_runtime

    return cli_runtime()


def failure(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` in red and return the exit to raise."""
    err.print(f"[red]{message}[/red]")
    return typer.Exit(code)
