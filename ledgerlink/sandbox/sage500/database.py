"""The simulator's database engine.

Sage 500 runs on SQL Server, where a reader and the import procedure work side by side
under row locks. SQLite's default rollback journal locks the whole file instead: while
the import posts a receipt, the integration's own reads and staging inserts wait, and
every commit syncs the journal. Write-ahead logging (readers never block the writer) is
the nearer model of the real server, and it is persistent in the file, so the
connector's engine on the same file gets it too."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event


def simulator_engine(url: str) -> Engine:
    """An engine on the simulator's database at ``url`` (SQLite in WAL mode)."""
    engine = create_engine(url)
    if engine.url.get_backend_name() == "sqlite" and engine.url.database not in (
        None,
        "",
        ":memory:",
    ):

        @event.listens_for(engine, "connect")
        def _write_ahead(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine
