"""Fresh, migrated databases for each test, on either back-end.

Migrating once per session and cloning is what keeps running every test twice (SQLite
and PostgreSQL) affordable: PostgreSQL clones a template database, SQLite copies a file.
A PostgreSQL clone costs a few hundred milliseconds, so the factory makes the next test's
database (and drops the last one) on a background thread while the current test runs.
It clones with ``STRATEGY FILE_COPY`` where the server has it (PostgreSQL 15+): the
default ``WAL_LOG`` writes every block of the template through the WAL again, 2.5 times
slower for our 10 MB template (0.21 s against 0.08 s a clone, measured); the checkpoint
``FILE_COPY`` asks for is cheap on a test server that never syncs.
"""

from __future__ import annotations

import itertools
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from ledgerlink.store.db import Database
from ledgerlink.store.migrate import upgrade

_counter = itertools.count(1)

#: Every back-end a ``db_url`` test runs on, with the marks its test ids carry.
BACKENDS: dict[str, tuple[pytest.MarkDecorator, ...]] = {
    "sqlite": (),
    "postgresql": (pytest.mark.postgresql,),
}


def chosen_backends(setting: str | None) -> list[str]:
    """The back-ends named in ``LEDGERLINK_TEST_BACKENDS`` (all of them when unset)."""
    if not setting or not setting.strip():
        return list(BACKENDS)
    names = [name.strip().lower() for name in setting.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown:
        raise pytest.UsageError(
            f"LEDGERLINK_TEST_BACKENDS: unknown back-end {', '.join(unknown)}; "
            f"use a comma-separated list of {', '.join(BACKENDS)}"
        )
    return [name for name in BACKENDS if name in names]


class SqliteFactory:
    def __init__(self, workdir: Path):
        self.template = workdir / "template.db"
        db = Database(f"sqlite:///{self.template}")
        upgrade(db)
        with db.engine.connect() as conn:  # fold the WAL into the file before copying it
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        db.dispose()

    def create(self, directory: Path) -> str:
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "ledgerlink.db"
        shutil.copyfile(self.template, target)
        return f"sqlite:///{target}"


class PostgresFactory:
    TEMPLATE = "ledgerlink_template"

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self._admin_dsn = _dsn(admin_url)
        with psycopg.connect(self._admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.TEMPLATE}")
            conn.execute(f"CREATE DATABASE {self.TEMPLATE}")
            version = conn.execute("SHOW server_version_num").fetchone()
        db = Database(self._url_for(self.TEMPLATE))
        upgrade(db)
        db.dispose()
        self._strategy = " STRATEGY FILE_COPY" if version and int(version[0]) >= 150000 else ""
        # One thread, so clones and drops run one at a time, in the order asked for.
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-clone")
        self._next: Future[str] = self._background.submit(self._clone)

    def create(self, _directory: Path) -> str:
        """A fresh clone of the template: the one made ahead, while the next is made."""
        name = self._next.result()
        self._next = self._background.submit(self._clone)
        return self._url_for(name)

    def drop(self, url: str) -> None:
        """Drop a test's database in the background (``WITH (FORCE)`` ends any connection
        the test left open); the next clone waits behind it, so they never pile up."""
        self._background.submit(self._drop, make_url(url).database)

    def close(self) -> None:
        """Finish the drops asked for and drop the clone made ahead (before the server
        stops)."""
        self._background.shutdown(wait=True, cancel_futures=False)
        if self._next.done() and self._next.exception() is None:
            self._drop(self._next.result())

    def _clone(self) -> str:
        name = f"ledgerlink_t{next(_counter)}"
        with psycopg.connect(self._admin_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {self.TEMPLATE}{self._strategy}")
        return name

    def _drop(self, name: str | None) -> None:
        with psycopg.connect(self._admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def _url_for(self, name: str) -> str:
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
