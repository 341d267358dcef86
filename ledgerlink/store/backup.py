"""Backing up ledgerlink's database to one file, and restoring it, on either back-end.

* **SQLite**: SQLite's online backup API copies a consistent snapshot page by page while
  the web process and workers go on writing (a plain file copy of a database in WAL mode
  can miss what is still in ``-wal``, or catch a page mid-write). The copy is checked with
  ``PRAGMA integrity_check`` and left in rollback-journal mode, so it is one file.
* **PostgreSQL**: ``pg_dump --format=custom`` (a consistent snapshot in one transaction;
  writers are not blocked), restored with ``pg_restore`` in a single transaction.

The vault key is deliberately *not* in the backup: whoever holds both can read every
stored credential. It is backed up once (and after each ``vault rotate``) to a different
place; ``restore`` says how many stored secrets the configured key cannot decrypt, so a
restore with the wrong key is found at once instead of at the next sync.

A restore is recorded in the audit log (``database.restored``, with the backup's SHA-256).
Signed audit checkpoints (``<var_dir>/audit-anchors``) newer than the restored chain would
make every later ``audit verify`` report the restore as a truncation; they are moved aside
(kept, renamed with the time of the restore), not deleted.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import URL, make_url

from ledgerlink.settings import Settings
from ledgerlink.store import audit
from ledgerlink.store.audit_anchors import AnchorFile, AnchorProblem
from ledgerlink.store.db import Database
from ledgerlink.store.models import AuditEntry, Connection, ConnectionSecret
from ledgerlink.vault import Vault, load_vault

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"
#: A pg_dump or pg_restore that has not finished in this long is stopped.
TOOL_TIMEOUT_SECONDS = 6 * 3600


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    backend: str
    size: int
    sha256: str
    audit_entries: int

    def __str__(self) -> str:
        return (
            f"Backed up the {self.backend} database to {self.path} ({self.size:,} bytes, "
            f"{self.audit_entries:,} audit entries, SHA-256 {self.sha256}). The vault key "
            "is not in it: keep a copy of the key somewhere else (see docs/operations.md)."
        )


@dataclass
class RestoreReport:
    path: Path
    backend: str
    sha256: str
    audit_entries: int
    pending_migrations: list[str] = field(default_factory=list)
    undecryptable_secrets: list[str] = field(default_factory=list)
    anchors_moved_to: Path | None = None

    def lines(self) -> list[str]:
        said = [
            f"Restored the {self.backend} database from {self.path} (SHA-256 {self.sha256}; "
            f"{self.audit_entries:,} audit entries)."
        ]
        if self.pending_migrations:
            said.append(
                f"The backup's schema is {len(self.pending_migrations)} revision(s) behind "
                "this version: run `ledgerlink migrate` before starting the web process and "
                "workers. (The restore is not in the audit log: that older schema's log is "
                "not written to; note the restore in your change record.)"
            )
        if self.anchors_moved_to is not None:
            said.append(
                "The signed audit checkpoints named entries newer than the restored chain; "
                f"they were moved to {self.anchors_moved_to} and the next `ledgerlink audit "
                "verify` starts new ones."
            )
        return said

    def vault_problem(self) -> str | None:
        """What to do when the configured vault key cannot read restored credentials."""
        if not self.undecryptable_secrets:
            return None
        names = ", ".join(self.undecryptable_secrets[:5])
        return (
            f"{len(self.undecryptable_secrets)} stored secret(s) cannot be decrypted with the "
            f"configured vault key ({names}): configure the key that was in use when the "
            "backup was taken (LEDGERLINK_VAULT_KEYS or the key file) and run the restore "
            "again, or re-enter those credentials under Accounting Integration."
        )


def backup(settings: Settings, target: Path) -> BackupReport:
    """Write a consistent copy of the configured database to ``target`` (a new file, mode
    0600: it holds member data and encrypted credentials)."""
    if target.exists():
        raise BackupError(f"{target} exists already; give a new file name for the backup")
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist; create it first")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and not _sqlite_path(url).is_file():
        raise BackupError(
            f"the database file {_sqlite_path(url)} does not exist: nothing to back up"
        )
    db = Database(settings.resolved_database_url)
    try:
        with db.read() as session:
            entries = int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
    finally:
        db.dispose()
    try:
        if url.get_backend_name() == "sqlite":
            _sqlite_backup(_sqlite_path(url), partial)
        else:
            _pg_dump(url, partial)
        os.chmod(partial, 0o600)
        partial.rename(target)
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(
        target, url.get_backend_name(), target.stat().st_size, _sha256(target), entries
    )


def restore(settings: Settings, source: Path, *, replace: bool, actor: str) -> RestoreReport:
    """Put the backup ``source`` in place of the configured database. A database holding
    data is replaced only with ``replace`` (stop the web process and workers first)."""
    if not source.is_file():
        raise BackupError(f"{source} is not a file; give the path of a ledgerlink backup")
    url = make_url(settings.resolved_database_url)
    backend = url.get_backend_name()
    kind = _kind_of(source)
    if kind != backend:
        raise BackupError(
            f"{source} is a {kind or 'unknown'} backup but the configured database is "
            f"{backend}; restore it into a {kind or 'matching'} database (set "
            "LEDGERLINK_DATABASE_URL), or move data between back-ends another way"
        )
    digest = _sha256(source)
    before = _anchor_head(settings)
    if backend == "sqlite":
        _sqlite_restore(source, _sqlite_path(url), replace=replace)
    else:
        _pg_restore(url, source, replace=replace)
    db = Database(settings.resolved_database_url)
    try:
        report = RestoreReport(source, backend, digest, 0)
        from ledgerlink.store.migrate import pending_revisions  # deferred: alembic, 0.6 s

        report.pending_migrations = pending_revisions(db)
        report.undecryptable_secrets = _undecryptable(db, configured_vault(settings))
        report.anchors_moved_to = _set_anchors_aside(settings, db, before)
        if not report.pending_migrations:  # an older schema's audit table may differ
            with db.transaction() as session:
                audit.record(
                    session,
                    actor=actor,
                    action="database.restored",
                    entity_type="database",
                    entity_id=None,
                    after={"backup": source.name, "sha256": digest, "backend": backend},
                )
        with db.read() as session:
            report.audit_entries = int(
                session.scalar(select(func.count()).select_from(AuditEntry)) or 0
            )
        return report
    finally:
        db.dispose()


# -- SQLite --------------------------------------------------------------------------------


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up or restore")
    return Path(url.database)


def _sqlite_backup(source: Path, target: Path) -> None:
    if not source.is_file():
        raise BackupError(f"the database file {source} does not exist: nothing to back up")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        _check_sqlite(dst, target)
    finally:
        dst.close()
        src.close()


def _sqlite_restore(source: Path, target: Path, *, replace: bool) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        _check_sqlite(src, source)
        tables = {row[0] for row in src.execute("SELECT name FROM sqlite_master")}
        if "alembic_version" not in tables:
            raise BackupError(f"{source} is an SQLite database but not a ledgerlink backup")
        if _sqlite_holds_data(target) and not replace:
            raise _holds_data(str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        dst = sqlite3.connect(target, timeout=30)
        try:
            # The backup API writes through the destination's own pager, so a database in
            # WAL mode (and its -wal file) ends up exactly the backup's content.
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")
        finally:
            dst.close()
        os.chmod(target, 0o600)
    finally:
        src.close()


def _check_sqlite(connection: sqlite3.Connection, path: Path) -> None:
    problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise BackupError(f"{path} failed SQLite's integrity check: {'; '.join(problems[:3])}")


def _sqlite_holds_data(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size == 0:
        return False
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return bool(connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
    finally:
        connection.close()


# -- PostgreSQL ----------------------------------------------------------------------------


def pg_tool(name: str) -> str:
    """``pg_dump`` or ``pg_restore``: on the PATH, else the newest under /usr/lib/postgresql."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    raise BackupError(
        f"{name} is not installed on this server; install PostgreSQL's client programs "
        "(Debian: apt-get install postgresql-client, the same or a newer major version than "
        "the server)"
    )


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URL without the password, and the environment that carries it
    (a password on the command line would show in ``ps``). A URL without a password leaves
    libpq's own ``PGPASSWORD`` / ``~/.pgpass`` to supply it, as psycopg does."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(  # noqa: S603 - our own argv (a PostgreSQL tool and a path), no shell
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} did not finish within {TOOL_TIMEOUT_SECONDS} s") from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackupError(f"{what} failed: {detail}")


def _pg_dump(url: URL, target: Path) -> None:
    dsn, env = _libpq(url)
    _run(
        [pg_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(target), dsn],
        env,
        "pg_dump",
    )


def _pg_restore(url: URL, source: Path, *, replace: bool) -> None:
    db = Database(url.render_as_string(hide_password=False))
    try:
        tables = inspect(db.engine).get_table_names()
        if tables and not replace:
            raise _holds_data(f"{url.database} on {url.host}")
        if tables:
            with db.engine.begin() as connection:
                # Everything ledgerlink and procrastinate keep is in ``public``; a newer
                # schema's extra tables must go too, or `migrate` would meet them later.
                connection.exec_driver_sql("DROP SCHEMA public CASCADE")
                connection.exec_driver_sql("CREATE SCHEMA public")
    except BackupError:
        raise
    except Exception as exc:
        raise BackupError(
            f"could not empty the database {url.database} before restoring ({exc}); restore "
            "as the database's owner, or into a new empty database"
        ) from exc
    finally:
        db.dispose()
    dsn, env = _libpq(url)
    _run(
        [
            pg_tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "--dbname",
            dsn,
            str(source),
        ],
        env,
        "pg_restore",
    )


# -- after a restore -----------------------------------------------------------------------


def _holds_data(where: str) -> BackupError:
    return BackupError(
        f"the configured database ({where}) holds data already. Stop the web process and "
        "every worker, then run the restore again with --replace to put the backup in its "
        "place (take a backup of it first if you may want it back)"
    )


def _kind_of(path: Path) -> str | None:
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_DUMP_MAGIC):
        return "postgresql"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def configured_vault(settings: Settings) -> Vault | None:
    """The vault as configured, or None when no key is: unlike ``load_vault`` this never
    makes a new key file (a new key would decrypt nothing that was restored)."""
    if settings.vault_keys is not None and settings.vault_keys.get_secret_value().strip():
        return load_vault(settings)
    if settings.resolved_vault_key_file.exists():
        return load_vault(settings)
    return None


def _undecryptable(db: Database, vault: Vault | None) -> list[str]:
    with db.read() as session:
        rows = session.execute(
            select(ConnectionSecret.name, ConnectionSecret.ciphertext, Connection.name)
            .join(Connection, Connection.id == ConnectionSecret.connection_id)
            .order_by(ConnectionSecret.id)
        ).all()
    return [f"{row[2]}: {row[0]}" for row in rows if vault is None or not vault.can_decrypt(row[1])]


def _anchor_head(settings: Settings) -> tuple[int, str] | None:
    try:
        newest = AnchorFile.for_settings(settings).newest()
    except AnchorProblem:
        return None
    return (newest.seq, newest.hash) if newest is not None else None


def _set_anchors_aside(
    settings: Settings, db: Database, anchored: tuple[int, str] | None
) -> Path | None:
    """Move the checkpoint file aside when its newest checkpoint names an entry the
    restored chain does not hold (with that hash)."""
    if anchored is None:
        return None
    seq, digest = anchored
    with db.read() as session:
        held = session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == seq))
    if held == digest:
        return None
    path = AnchorFile.for_settings(settings).path
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = path.with_name(f"{path.name}.before-restore-{stamp}")
    path.rename(moved)
    return moved
