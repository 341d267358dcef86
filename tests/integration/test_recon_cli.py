"""``ledgerlink recon`` as a user runs it: run, list breaks, export, resolve, import a
statement (a bad one refused with its line, nothing kept), close a period."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.migrate import upgrade
from tests.support.cli import cli, cli_fails
from tests.support.recon import OFX, seed_scope
from tests.support.server import run_cli, server_env


def _fails(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ledgerlink.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    return " ".join(done.stderr.split())


@pytest.mark.slow  # two CLI processes and a dozen commands in-process (about 20 s)
def test_a_reconciliation_from_the_command_line(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    upgrade(db)
    scope_id = seed_scope(db)
    env = {**server_env(settings), "COLUMNS": "400"}  # a wide terminal: ids on one line
    scope = ["--scope", str(scope_id)]
    ran = run_cli(["recon", "run", *scope, "--no-read", "--as-of", "2026-11-20"], env)
    assert "Run 1:" in " ".join(ran.split())
    listed = " ".join(cli(["recon", "breaks", *scope], env).split())
    assert "missing_receipt:5002" in listed
    out = tmp_path / "breaks.xlsx"
    assert "written to" in cli(["recon", "breaks", *scope, "--export", str(out)], env)
    assert out.read_bytes()[:2] == b"PK"

    bad = tmp_path / "bad.ofx"
    bad.write_bytes(OFX.replace(b"<TRNAMT>500.00", b"<TRNAMT>five hundred"))
    refused = _fails(["recon", "import-statement", str(bad), *scope], env)
    assert "five hundred" in refused
    assert "Nothing was imported" in refused
    good = tmp_path / "nov.ofx"
    good.write_bytes(OFX)
    assert "2 lines" in cli(["recon", "import-statement", str(good), *scope], env)
    assert "already imported" in " ".join(
        cli(["recon", "import-statement", str(good), *scope], env).split()
    )

    assert "open break" in cli_fails(["recon", "close", "2026-11", *scope], env)
    assert "Say why" in cli_fails(
        ["recon", "resolve", "missing_receipt:5002", "--action", "explain", *scope], env
    )
    cli(["recon", "run", *scope, "--no-read", "--as-of", "2026-11-20"], env)
    for line in cli(["recon", "breaks", *scope], env).split():
        if ":" in line and line.split(":")[0] in {
            "missing_receipt",
            "unknown_credit",
            "deposit_mismatch",
            "batch_ledger_mismatch",
            "deposit_in_transit",
        }:
            cli(
                ["recon", "resolve", line, "--action", "explain", "--reason", "agreed", *scope],
                env,
            )
    closed = " ".join(cli(["recon", "close", "2026-11", *scope], env).split())
    assert "Period 2026-11 closed and signed off" in closed
