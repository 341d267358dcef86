"""Alembic environment: runs on the connection that ``store.migrate`` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from ledgerlink.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        _run(conn)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER by copying the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
