"""What the command-line commands share (``ledgerlink`` and its groups: members, link,
sync, payments, recon): the consoles, the runtime built from the environment's settings,
and a failure that names what went wrong. ``cli.py`` and every group import it; it
imports none of them."""

from __future__ import annotations

import typer
from rich.console import Console

from ledgerlink.logs import configure_logging
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings

out = Console()
err = Console(stderr=True)


def settings() -> Settings:
    """The settings from the environment; a bad one ends the command naming it (exit 2)."""
    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the setting
        err.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def runtime() -> Runtime:
    """The composition root for a command, with logging set up as configured."""
    chosen = settings()
    configure_logging(chosen.log_level, chosen.log_format)
    return Runtime(chosen)


def failure(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` in red and return the exit to raise."""
    err.print(f"[red]{message}[/red]")
    return typer.Exit(code)
