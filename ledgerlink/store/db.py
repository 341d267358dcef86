"""The database handle: one engine per process, and the two kinds of transaction we use.

SQLite and PostgreSQL need different care to give the same guarantees:

* SQLite runs in WAL mode (readers never block the writer) with a busy timeout, and a
  write transaction starts with ``BEGIN IMMEDIATE`` so it takes the write lock before it
  reads. Without that, a transaction that read first and wrote second fails outright
  with ``SQLITE_BUSY`` when another writer committed in between.
* PostgreSQL uses a pooled engine and READ COMMITTED; rows that need serialising (the
  audit head, job claims) are locked explicitly by the code that needs it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = structlog.get_logger("ledgerlink.store")


class Database:
    """Owns the engine and hands out sessions.

    ``transaction()`` is the unit of work for anything that writes: everything done
    in it (rows, audit entries, enqueued jobs) commits together or not at all.
    ``read()`` is for pages and reports that only look.
    """

    def __init__(self, url: str, *, sqlite_busy_timeout_ms: int = 10_000, echo: bool = False):
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = _create_engine(url, sqlite_busy_timeout_ms, echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: commits on success, rolls back on any exception."""
        with self._sessions() as session:
            if self.is_sqlite:
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session; anything written in it is rolled back.

        Closing (not ``rollback()``) ends it: the database transaction is rolled back all
        the same, but loaded objects stay readable after the block (a rollback would
        expire them), so pages can render what they read.
        """
        with self._sessions() as session:
            yield session

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _create_engine(url: str, busy_timeout_ms: int, echo: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10)

    if parsed.database and parsed.database != ":memory:":
        _create_owner_only(Path(parsed.database))
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _create_owner_only(database: Path) -> None:
    """An SQLite database (and a directory made for it) that only ledgerlink's user can
    read: the file is created empty with mode 0600 before SQLite opens it, and SQLite gives
    the -wal, -shm and -journal files it creates later the database file's permissions.
    Files an earlier version left readable to others are fixed here too."""
    if not database.parent.exists():
        database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for suffix in ("", "-wal", "-shm", "-journal"):
        owner_only(Path(f"{database}{suffix}"))


def owner_only(path: Path) -> None:
    """Take group and other permissions off ``path`` (a file or directory of ours) when it
    has any; symbolic links and other users' files are left alone."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077 or info.st_uid != os.getuid():
        return
    try:
        path.chmod(stat.S_IMODE(info.st_mode) & 0o700)
    except OSError as exc:
        log.warning("store.permissions_not_fixed", path=str(path), error=str(exc))
