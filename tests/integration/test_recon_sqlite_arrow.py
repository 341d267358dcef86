"""Whole sides read as Arrow in child processes (recon/sqlite_arrow.py): they see what
this process committed (also rows still in the WAL), they leave this process's own
SQLite connection working, and a failed read says why."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ledgerlink.recon import sqlite_arrow


def _database(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")  # the rows below stay in the WAL
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ref TEXT, amount INTEGER)")
    return connection


def test_children_read_committed_rows_side_by_side_and_this_process_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledgerlink.db"
    connection = _database(path)
    rows = [(i, None if i < 2000 else f"R{i}", i * 100) for i in range(1, 3001)]
    connection.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    read = sqlite_arrow.read(
        str(path),
        {
            "all": "SELECT id, ref, amount FROM t ORDER BY id",
            "some": "SELECT id FROM t WHERE id <= 10",
        },
    )
    assert read["all"].height == 3000
    assert read["all"].get_column("ref").null_count() == 1999  # nulls first, text after
    assert read["all"].row(-1) == (3000, "R3000", 300000)
    assert read["some"].height == 10
    connection.execute("INSERT INTO t VALUES (3001, 'R3001', 1)")
    assert connection.execute("SELECT count(*) FROM t").fetchone() == (3001,)
    assert sqlite_arrow.read(str(path), {"n": "SELECT count(*) AS n FROM t"})["n"].item() == 3001


def test_a_failed_read_names_the_error(tmp_path: Path) -> None:
    path = tmp_path / "ledgerlink.db"
    _database(path)
    with pytest.raises(sqlite_arrow.ArrowReadError, match="no such table: missing"):
        sqlite_arrow.read(str(path), {"x": "SELECT * FROM missing"})
