"""The simulated gateway's state: one SQLite file (WAL) under the state directory.

Holds tokens, customer profiles, transactions, settlement batches, hosted-field tokens and
disputes. Never a full card number or CSC: cards are kept as masked number, type, expiry.
Amounts are integer cents.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledgerlink.sandbox.paytrace import codes

FILE_NAME = "paytrace.sqlite3"
FIRST_TRANSACTION_ID = 180_000_001
FIRST_BATCH_NUMBER = 1001
FIRST_CHECK_ID = 9_981_601

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, username TEXT NOT NULL, created_at INTEGER NOT NULL,
    expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    customer_id TEXT PRIMARY KEY, masked TEXT NOT NULL, card_type TEXT NOT NULL,
    exp_month INTEGER NOT NULL, exp_year INTEGER NOT NULL, billing TEXT NOT NULL,
    email TEXT NOT NULL DEFAULT '', phone TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    check_account TEXT NOT NULL DEFAULT '', check_routing TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY, type TEXT NOT NULL, status TEXT NOT NULL,
    response_code INTEGER NOT NULL, amount INTEGER NOT NULL,
    authorized_amount INTEGER NOT NULL,
    approval_code TEXT NOT NULL DEFAULT '', approval_message TEXT NOT NULL DEFAULT '',
    avs_response TEXT NOT NULL DEFAULT '', csc_response TEXT NOT NULL DEFAULT '',
    masked TEXT NOT NULL DEFAULT '', card_type TEXT NOT NULL DEFAULT '',
    exp_month INTEGER, exp_year INTEGER, fingerprint TEXT NOT NULL DEFAULT '',
    invoice_id TEXT NOT NULL DEFAULT '', customer_id TEXT NOT NULL DEFAULT '',
    customer_reference_id TEXT NOT NULL DEFAULT '', email TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '', billing TEXT NOT NULL DEFAULT '{}',
    original_id INTEGER, batch_number INTEGER,
    created_at REAL NOT NULL, settled_at REAL, voided_at REAL,
    created_by TEXT NOT NULL DEFAULT '', from_ip TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS transactions_created ON transactions (created_at);
CREATE INDEX IF NOT EXISTS transactions_batch ON transactions (batch_number);
CREATE INDEX IF NOT EXISTS transactions_original ON transactions (original_id);
CREATE INDEX IF NOT EXISTS transactions_dup ON transactions (fingerprint, created_at);
CREATE TABLE IF NOT EXISTS batches (
    batch_number INTEGER PRIMARY KEY, settled_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS deposits (
    batch_number INTEGER PRIMARY KEY, gross INTEGER NOT NULL, fees INTEGER NOT NULL,
    withheld INTEGER NOT NULL, net INTEGER NOT NULL, deposit_on TEXT NOT NULL,
    fees_by_brand TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS withholdings (
    dispute_id INTEGER PRIMARY KEY, batch_number INTEGER NOT NULL, amount INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hosted_fields (
    hpf_token TEXT PRIMARY KEY, enc_key TEXT NOT NULL, masked TEXT NOT NULL,
    card_type TEXT NOT NULL, exp_month INTEGER NOT NULL, exp_year INTEGER NOT NULL,
    csc_response TEXT NOT NULL, expires_at REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS checks (
    id INTEGER PRIMARY KEY, type TEXT NOT NULL, status TEXT NOT NULL,
    response_code INTEGER NOT NULL, amount INTEGER NOT NULL,
    account_masked TEXT NOT NULL, routing TEXT NOT NULL,
    invoice_id TEXT NOT NULL DEFAULT '', customer_id TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT '',
    billing TEXT NOT NULL DEFAULT '{}', original_id INTEGER,
    created_at REAL NOT NULL, funded_at REAL, settled_at REAL, voided_at REAL,
    returned_at REAL, return_code TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '', from_ip TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS checks_created ON checks (created_at);
CREATE TABLE IF NOT EXISTS level_three (
    transaction_id INTEGER PRIMARY KEY, brand TEXT NOT NULL, data TEXT NOT NULL,
    line_items INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS client_keys (
    client_key TEXT PRIMARY KEY, username TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS disputes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, transaction_id INTEGER NOT NULL,
    amount INTEGER NOT NULL, reason_code TEXT NOT NULL, reason TEXT NOT NULL,
    received_at REAL NOT NULL, status TEXT NOT NULL DEFAULT 'open');
"""

Row = dict[str, Any]


class Store:
    """Thread-safe access to the simulator's SQLite file."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / FILE_NAME
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._add_columns(
            "customers",
            {
                "check_account": "TEXT NOT NULL DEFAULT ''",
                "check_routing": "TEXT NOT NULL DEFAULT ''",
            },
        )

    def _add_columns(self, table: str, columns: dict[str, str]) -> None:
        """State kept by an older simulator gains the columns added since."""
        have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in have:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        with self._lock:
            row = self._db.execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, params).fetchall()]

    # -- meta -------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- tokens -----------------------------------------------------------------------------

    def add_token(self, token: str, username: str, created_at: int, expires_at: float) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM tokens WHERE expires_at < ?", (time.time() - 86_400,))
            db.execute(
                "INSERT INTO tokens (token, username, created_at, expires_at) VALUES (?,?,?,?)",
                (token, username, created_at, expires_at),
            )

    def token(self, token: str) -> Row | None:
        return self.one("SELECT * FROM tokens WHERE token = ?", (token,))

    # -- transactions -----------------------------------------------------------------------

    def insert_transaction(self, db: sqlite3.Connection, values: Row) -> int:
        row = db.execute("SELECT MAX(id) FROM transactions").fetchone()
        new_id = max(int(row[0] or 0) + 1, FIRST_TRANSACTION_ID)
        values = {**values, "id": new_id}
        if isinstance(values.get("billing"), dict):
            values["billing"] = json.dumps(values["billing"], sort_keys=True)
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        db.execute(f"INSERT INTO transactions ({columns}) VALUES ({marks})", tuple(values.values()))  # noqa: S608 - column names are ours
        return new_id

    def transaction_row(self, transaction_id: int) -> Row | None:
        return self.one("SELECT * FROM transactions WHERE id = ?", (transaction_id,))

    def insert_check(self, db: sqlite3.Connection, values: Row) -> int:
        row = db.execute("SELECT MAX(id) FROM checks").fetchone()
        new_id = max(int(row[0] or 0) + 1, FIRST_CHECK_ID)
        values = {**values, "id": new_id}
        if isinstance(values.get("billing"), dict):
            values["billing"] = json.dumps(values["billing"], sort_keys=True)
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        db.execute(f"INSERT INTO checks ({columns}) VALUES ({marks})", tuple(values.values()))  # noqa: S608 - column names are ours
        return new_id

    def check_row(self, check_id: int) -> Row | None:
        return self.one("SELECT * FROM checks WHERE id = ?", (check_id,))

    def settle_checks(self, now: float) -> int:
        """Checks pending settlement settle (the NACHA file goes to the bank)."""
        with self.transaction() as db:
            done = db.execute(
                "UPDATE checks SET status = ?, settled_at = ? WHERE status = ?",
                (codes.STATUS_SETTLED, now, codes.STATUS_PENDING),
            )
            return int(done.rowcount)

    # -- customers --------------------------------------------------------------------------

    def customer(self, customer_id: str) -> Row | None:
        return self.one("SELECT * FROM customers WHERE customer_id = ?", (customer_id,))

    # -- settlement -------------------------------------------------------------------------

    def settle(
        self, now: float, on_settled: Callable[[sqlite3.Connection, int], None] | None = None
    ) -> Row | None:
        """Settle every transaction pending settlement into a new batch; None if none pend.

        ``on_settled(db, batch_number)`` runs in the same transaction (the deposit of the
        batch, see settlement.py)."""
        with self.transaction() as db:
            pending = db.execute(
                "SELECT COUNT(*) FROM transactions WHERE status = ?", (codes.STATUS_PENDING,)
            ).fetchone()[0]
            if not pending:
                return None
            last = db.execute("SELECT MAX(batch_number) FROM batches").fetchone()[0]
            number = max(int(last or 0) + 1, FIRST_BATCH_NUMBER)
            db.execute(
                "INSERT INTO batches (batch_number, settled_at) VALUES (?, ?)", (number, now)
            )
            db.execute(
                "UPDATE transactions SET status = ?, settled_at = ?, batch_number = ?"
                " WHERE status = ?",
                (codes.STATUS_SETTLED, now, number, codes.STATUS_PENDING),
            )
            if on_settled is not None:
                on_settled(db, number)
        return self.batch_summary(number)

    def batch_summary(self, number: int) -> Row | None:
        batch = self.one("SELECT * FROM batches WHERE batch_number = ?", (number,))
        if batch is None:
            return None
        rows = self.all(
            "SELECT type, card_type, COUNT(*) AS n, SUM(amount) AS total FROM transactions"
            " WHERE batch_number = ? GROUP BY type, card_type",
            (number,),
        )
        sales = [r for r in rows if r["type"] != "REFUND"]
        refunds = [r for r in rows if r["type"] == "REFUND"]
        by_card: dict[str, dict[str, int]] = {}
        for r in rows:
            entry = by_card.setdefault(r["card_type"] or "Unknown", {"count": 0, "net": 0})
            entry["count"] += r["n"]
            entry["net"] += -r["total"] if r["type"] == "REFUND" else r["total"]
        sales_total = sum(r["total"] for r in sales)
        refund_total = sum(r["total"] for r in refunds)
        return {
            "batch_number": number,
            "settled_at": batch["settled_at"],
            "sales_count": sum(r["n"] for r in sales),
            "sales_amount": sales_total,
            "refund_count": sum(r["n"] for r in refunds),
            "refund_amount": refund_total,
            "transaction_count": sum(r["n"] for r in rows),
            "net_amount": sales_total - refund_total,
            "by_card_type": by_card,
        }
