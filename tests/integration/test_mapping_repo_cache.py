"""A compiled spec is cached by the content of the tables it includes, not only by their
version numbers: two installations (or two test databases in one process) that each
saved their own version 1 of a table must each run with their own rows."""

from __future__ import annotations

from pathlib import Path

from ledgerlink.identity.principal import cli_principal
from ledgerlink.store.db import Database
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.migrate import upgrade

SPEC = "paytrace_transaction_to_sage500_cash_receipt"


def _installation(tmp_path: Path, name: str, sage500_state: str) -> Database:
    db = Database(f"sqlite:///{tmp_path / name}.db")
    upgrade(db)
    repo = MappingRepository(None)
    shipped = repo.base_text("payment_status")
    assert shipped is not None
    text = shipped.text.replace(
        "{paytrace_status: approved, sage500: Applied,",
        f"{{paytrace_status: approved, sage500: {sage500_state},",
    )
    assert text != shipped.text
    with db.transaction() as session:
        saved = repo.save(session, cli_principal(), "payment_status", text, "ours")
    assert saved.version == 1
    return db


def test_each_database_runs_its_own_version_1_of_a_shared_table(tmp_path: Path) -> None:
    first = _installation(tmp_path, "first", "Applied-First")
    second = _installation(tmp_path, "second", "Applied-Second")
    repo = MappingRepository(None)
    seen = []
    for db in (first, second):
        with db.read() as session:
            active = repo.load(session, SPEC)
        [row] = [
            r
            for r in active.compiled.tables["payment_status"].rows
            if r["paytrace_status"] == "approved"
        ]
        seen.append((active.tables["payment_status"], row["sage500"]))
    assert seen == [
        ("payment_status@v1", "Applied-First"),
        ("payment_status@v1", "Applied-Second"),
    ]
