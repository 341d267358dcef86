"""``ledgerlink recon rules …``: show the active matching rules, upload a new version,
roll back to an earlier one, list the history. Changes are audited with ``--reason``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ledgerlink.identity.principal import cli_principal
from ledgerlink.mapping.errors import SpecError
from ledgerlink.recon import rule_specs
from ledgerlink.terminal import failure as _fail
from ledgerlink.terminal import out
from ledgerlink.terminal import runtime as _runtime

rules_app = typer.Typer(
    help="Matching rules: the versioned YAML spec every reconciliation run uses.",
    no_args_is_help=True,
)

ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why the rules change (kept in the audit log).")
]


@rules_app.command("show")
def show() -> None:
    """Print the active rules' YAML and the version runs record."""
    runtime = _runtime()
    with runtime.db.read() as session:
        rules = rule_specs.active(session)
    out.print(f"# {rules.label} ({rules.file})", markup=False, highlight=False)
    out.print(rules.text, markup=False, highlight=False)


@rules_app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(help="The rules spec, YAML.")],
    reason: ReasonOption,
) -> None:
    """Check FILE and make it the active rules (refused with its line if it cannot run)."""
    try:
        text = file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"FILE: {file} cannot be read as UTF-8 text: {exc}") from None
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            row = rule_specs.save(session, cli_principal(), text, reason, file=str(file))
            label = f"{rule_specs.NAME}@v{row.version}"
    except SpecError as exc:
        lines = "\n".join(f"  {problem}" for problem in exc.problems)
        raise _fail(f"Not saved: the rules cannot be compiled:\n{lines}") from None
    except rule_specs.ReasonRequired as exc:
        raise _fail(f"--{exc}") from None
    out.print(f"Saved {label}; the next run uses it.")


@rules_app.command("rollback")
def rollback(
    version: Annotated[int, typer.Argument(help="The version to restore; 0: shipped default.")],
    reason: ReasonOption,
) -> None:
    """Make an earlier version active again (saved as a new version)."""
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            row = rule_specs.rollback(session, cli_principal(), version, reason)
            label = f"{rule_specs.NAME}@v{row.version}"
    except (rule_specs.RuleVersionNotFound, SpecError) as exc:
        raise _fail(f"VERSION: {exc}") from None
    except rule_specs.ReasonRequired as exc:
        raise _fail(f"--{exc}") from None
    out.print(f"Rolled back to version {version} as {label}; the next run uses it.")


@rules_app.command("history")
def history() -> None:
    """Every saved version: who, when, why, and which is active."""
    runtime = _runtime()
    with runtime.db.read() as session:
        rows = [rule_specs.version_out(row) for row in rule_specs.history(session)]
        active = rule_specs.active(session).label
    table = Table("version", "saved", "by", "reason", "active", title=f"Active: {active}")
    for row in rows:
        restored = row["rolled_back_from"]
        reason = str(row["reason"]) + (f" (restores v{restored})" if restored is not None else "")
        table.add_row(
            str(row["version"]),
            str(row["created_at"])[:19],
            str(row["author"]),
            reason,
            "yes" if row["is_active"] else "",
        )
    if not rows:
        out.print(f"No saved versions; runs use the shipped rules ({active}).")
        return
    out.print(table)
