"""What every ``ledgerlink`` start pays: the reconciliation engine (polars, lxml,
xlsxwriter) and argon2's start-up hash load only for the commands that use them, and the
deferred groups still answer like the others."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from ledgerlink.cli import app
from tests.support.server import cli_env

HEAVY = ("polars", "lxml", "xlsxwriter", "argon2", "alembic", "fastapi")


def test_the_cli_starts_without_the_heavy_modules() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, ledgerlink.cli; print(*(m for m in {HEAVY!r} if m in sys.modules))",
        ],
        env=cli_env({}),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == []


def test_deferred_groups_are_listed_and_answer() -> None:
    cli = CliRunner()
    listed = cli.invoke(app, ["--help"], terminal_width=200)
    assert listed.exit_code == 0
    assert "Reconciliation: PayTrace" in listed.output
    assert "Manage portal users" in listed.output

    recon = cli.invoke(app, ["recon", "--help"], terminal_width=200)
    assert recon.exit_code == 0
    assert "Reconciliation: PayTrace" in recon.output
    for command in ("scopes", "run", "breaks", "resolve", "import-statement", "rules"):
        assert command in recon.output
    users = cli.invoke(app, ["user", "create", "--help"], terminal_width=200)
    assert users.exit_code == 0
    assert "--password-stdin" in users.output

    unknown = cli.invoke(app, ["recon", "nosuch"])
    assert unknown.exit_code == 2
    assert "No such command" in unknown.output
