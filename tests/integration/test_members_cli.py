"""`ledgerlink members import/export` and `ledgerlink link` from the shell."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledgerlink.cli import app
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from tests.support.members import add_connection, add_levels, add_member, csv_bytes

ROWS = [
    "M00001,Jane,Doe,,jane@example.org,212-555-0123,personal,standard,active,,,,,,",
    "M00002,John,Smith,,not-an-email,,personal,standard,active,,,,,,",
]


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEDGERLINK_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("LEDGERLINK_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("LEDGERLINK_VAULT_KEYS", settings.vault_keys.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.setenv("LEDGERLINK_LOG_FORMAT", "console")
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def test_import_lists_bad_rows_and_a_reimport_changes_nothing(
    cli: CliRunner, db: Database, tmp_path: Path
) -> None:
    add_levels(db)
    file = tmp_path / "members.csv"
    file.write_bytes(csv_bytes(*ROWS))
    first = cli.invoke(app, ["members", "import", str(file)])
    assert first.exit_code == 1
    assert "1 new, 0 updated, 0 unchanged, 1 rejected" in first.output
    assert "email" in first.output
    file.write_bytes(csv_bytes(ROWS[0]))
    again = cli.invoke(app, ["members", "import", str(file)])
    assert again.exit_code == 0, again.output
    assert "0 new, 0 updated, 1 unchanged" in again.output

    exported = tmp_path / "out.csv"
    assert cli.invoke(app, ["members", "export", "-o", str(exported)]).exit_code == 0
    assert "M00001" in exported.read_text()


def _unwrapped(output: str) -> str:
    """The console's words without its line wrapping (its width depends on where it
    was first made, which a test cannot always choose)."""
    return " ".join(output.split())


def test_link_says_what_is_missing(cli: CliRunner, db: Database) -> None:
    add_levels(db)
    no_args = cli.invoke(app, ["link"])
    assert no_args.exit_code == 2
    nothing = cli.invoke(app, ["link", "--member", "M1", "--create"])
    assert nothing.exit_code == 1
    assert "there are 0 active ledger connections" in _unwrapped(nothing.output)
    add_connection(db, "Books")
    unknown = cli.invoke(app, ["link", "bulk", "--without-account", "--connection", "Nope"])
    assert "no connection named 'Nope'; known: Books" in _unwrapped(unknown.output)


def test_export_writes_members_named_like_formulas_as_text_to_a_file_and_stdout(
    cli: CliRunner, db: Database, tmp_path: Path
) -> None:
    add_levels(db)
    formulas = ["=cmd|' /C calc'!A0", "+1", "-2+3", "@SUM(A1:A9)"]
    for number, name in enumerate(formulas, start=1):
        add_member(db, f"M{number}", name, name, organisation=name)
    exported = tmp_path / "out.csv"
    assert cli.invoke(app, ["members", "export", "-o", str(exported)]).exit_code == 0
    to_stdout = cli.invoke(app, ["members", "export"])
    assert to_stdout.exit_code == 0
    for text in (exported.read_text(encoding="utf-8"), to_stdout.stdout):
        header, *rows = csv.reader(io.StringIO(text))
        cells = [cell for row in rows for cell in row]
        assert [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))] == []
        assert [row[header.index("last_name")] for row in rows] == ["'" + f for f in formulas]
    again = cli.invoke(app, ["members", "import", str(exported)])
    assert "0 new, 0 updated, 4 unchanged" in again.output
