"""The simulated Sage account's state: in memory for speed, written through to SQLite.

Every record lives in ``records`` as a JSON document keyed by (business, collection, id);
idempotency ids, OAuth codes and tokens and counters have their own tables. On start the
whole file is read into memory (a sandbox holds thousands of records, not millions), so
reads never touch the disk and a write is one short SQLite transaction.

The simulator's handlers run on one event loop and never await between reading and
writing state, so each request's changes are atomic without further locking; the lock
here only guards the admin thread and tests that call in from other threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FILE_NAME = "sbc.sqlite3"

Record = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    business TEXT NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (business, collection, id));
CREATE TABLE IF NOT EXISTS idempotency (
    business TEXT NOT NULL, collection TEXT NOT NULL, idempotency_id TEXT NOT NULL,
    record_id TEXT NOT NULL, PRIMARY KEY (business, collection, idempotency_id));
CREATE TABLE IF NOT EXISTS grants (
    token TEXT PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL);
"""


def new_id() -> str:
    """Sage ids are 32 lowercase hex characters."""
    return uuid.uuid4().hex


class Store:
    """Records per business and collection, OAuth grants, counters."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / FILE_NAME
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._records: dict[tuple[str, str], dict[str, Record]] = {}
        self._idempotency: dict[tuple[str, str, str], str] = {}
        self._grants: dict[str, Record] = {}
        self._meta: dict[str, str] = {}
        self._seq = 0
        #: Bumped by every change, so readers can cache what they derived from the state.
        self.version = 0
        self._dirty_records: dict[tuple[str, str, str], Record | None] = {}
        self._dirty_grants: dict[str, Record | None] = {}
        self._dirty_meta: dict[str, str] = {}
        self._dirty_idempotency: dict[tuple[str, str, str], str] = {}
        self._depth = 0
        self._load()

    def _load(self) -> None:
        rows = self._db.execute(
            "SELECT business, collection, id, seq, body FROM records ORDER BY seq"
        ).fetchall()
        for business, collection, record_id, seq, body in rows:
            self._records.setdefault((business, collection), {})[record_id] = json.loads(body)
            self._seq = max(self._seq, seq)
        for business, collection, key, record_id in self._db.execute(
            "SELECT business, collection, idempotency_id, record_id FROM idempotency"
        ):
            self._idempotency[(business, collection, key)] = record_id
        for token, _kind, body in self._db.execute("SELECT token, kind, body FROM grants"):
            self._grants[token] = json.loads(body)
        self._meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- units of work ------------------------------------------------------------------

    @contextmanager
    def unit(self) -> Iterator[None]:
        """Group changes into one SQLite transaction, written when the outermost unit ends.

        Callers validate before they change anything, so an exception inside a unit means
        a bug; the in-memory state is then reloaded from disk to stay consistent.
        """
        with self._lock:
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._discard()
                raise
            self._depth -= 1
            if self._depth == 0:
                self._flush()

    def _discard(self) -> None:
        self._dirty_records.clear()
        self._dirty_grants.clear()
        self._dirty_meta.clear()
        self._dirty_idempotency.clear()
        self._records.clear()
        self._idempotency.clear()
        self._grants.clear()
        self._load()

    def _flush(self) -> None:
        if not (
            self._dirty_records or self._dirty_grants or self._dirty_meta or self._dirty_idempotency
        ):
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for (business, collection, record_id), record in self._dirty_records.items():
                if record is None:
                    db.execute(
                        "DELETE FROM records WHERE business = ? AND collection = ? AND id = ?",
                        (business, collection, record_id),
                    )
                    continue
                db.execute(
                    "INSERT INTO records (business, collection, id, seq, body) VALUES (?,?,?,?,?)"
                    " ON CONFLICT (business, collection, id) DO UPDATE SET body = excluded.body",
                    (business, collection, record_id, record["_seq"], json.dumps(record)),
                )
            for (business, collection, key), record_id in self._dirty_idempotency.items():
                db.execute(
                    "INSERT OR REPLACE INTO idempotency VALUES (?,?,?,?)",
                    (business, collection, key, record_id),
                )
            for token, grant in self._dirty_grants.items():
                if grant is None:
                    db.execute("DELETE FROM grants WHERE token = ?", (token,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO grants (token, kind, body) VALUES (?,?,?)",
                        (token, grant["kind"], json.dumps(grant)),
                    )
            for key, value in self._dirty_meta.items():
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            self._dirty_records.clear()
            self._dirty_grants.clear()
            self._dirty_meta.clear()
            self._dirty_idempotency.clear()

    # -- records ------------------------------------------------------------------------

    def all(self, business: str, collection: str) -> list[Record]:
        """Every record of the collection, oldest first (including deleted ones)."""
        return list(self._records.get((business, collection), {}).values())

    def get(self, business: str, collection: str, record_id: str) -> Record | None:
        return self._records.get((business, collection), {}).get(record_id)

    def put(self, business: str, collection: str, record: Record) -> Record:
        """Insert or replace ``record`` (which carries its ``id``)."""
        self.version += 1
        with self.unit():
            if "_seq" not in record:
                self._seq += 1
                record["_seq"] = self._seq
            self._records.setdefault((business, collection), {})[record["id"]] = record
            self._dirty_records[(business, collection, record["id"])] = record
        return record

    def count(self, business: str, collection: str) -> int:
        return len(self._records.get((business, collection), {}))

    # -- idempotency ----------------------------------------------------------------------

    def replay(self, business: str, collection: str, idempotency_id: str) -> Record | None:
        record_id = self._idempotency.get((business, collection, idempotency_id))
        return None if record_id is None else self.get(business, collection, record_id)

    def remember(self, business: str, collection: str, idempotency_id: str, record_id: str) -> None:
        with self.unit():
            self._idempotency[(business, collection, idempotency_id)] = record_id
            self._dirty_idempotency[(business, collection, idempotency_id)] = record_id

    # -- OAuth grants (codes, access and refresh tokens) ---------------------------------------

    def grant(self, token: str) -> Record | None:
        return self._grants.get(token)

    def grant_items(self) -> list[tuple[str, Record]]:
        return list(self._grants.items())

    def put_grant(self, token: str, grant: Record) -> None:
        with self.unit():
            self._grants[token] = grant
            self._dirty_grants[token] = grant

    def drop_grant(self, token: str) -> None:
        with self.unit():
            self._grants.pop(token, None)
            self._dirty_grants[token] = None

    # -- counters and settings ------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        with self.unit():
            self._meta[key] = value
            self._dirty_meta[key] = value

    def next_number(self, name: str) -> int:
        """The next value of a counter (invoice numbers and the like), starting at 1."""
        with self.unit():
            value = int(self._meta.get(name, "0")) + 1
            self.set_meta(name, str(value))
        return value
