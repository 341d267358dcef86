"""Bring a database to the current schema: Alembic for ledgerlink's own tables and, on
PostgreSQL, procrastinate's schema for the job queue."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect

from ledgerlink.store.db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "sqlalchemy.url", db.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def upgrade(db: Database, revision: str = "heads") -> None:
    config = alembic_config(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    if not db.is_sqlite:
        _apply_procrastinate_schema(db)


def pending_revisions(db: Database) -> list[str]:
    """Revisions not yet applied (empty when the database is current).

    Also empty when the database carries a revision this version does not know: a newer
    ledgerlink migrated it, as a rolling upgrade does before it replaces the running
    processes. Revisions only expand the schema while the previous version runs
    (docs/operations.md, "Upgrades"), so this version keeps serving; before, its /readyz
    failed on the unknown revision and a load balancer took every old web process out
    of service the moment the migration committed."""
    script = ScriptDirectory.from_config(alembic_config(db))
    with db.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    heads = set(script.get_heads())
    if current == heads:
        return []
    if any(_unknown(script, revision) for revision in current):
        return []
    return [rev.revision for rev in script.iterate_revisions(tuple(heads), tuple(current) or None)]


def _unknown(script: ScriptDirectory, revision: str) -> bool:
    try:
        script.get_revision(revision)
    except CommandError:  # alembic's word for a revision it cannot find
        return True
    return False


def _apply_procrastinate_schema(db: Database) -> None:
    # procrastinate ships its schema as SQL; apply it once. Upgrading procrastinate
    # across versions means applying its migration scripts (see DEVELOPERS.md).
    if "procrastinate_jobs" in inspect(db.engine).get_table_names():
        return
    from procrastinate.schema import SchemaManager

    sql = SchemaManager.get_schema()
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(sql)
        cursor.close()
        raw.commit()
    finally:
        raw.close()
