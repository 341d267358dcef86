"""What to tell an operator when ledgerlink cannot reach Sage 500's database.

Drivers word connection failures for developers: pymssql (FreeTDS) answers a closed port
with ``(20009, b'DB-Lib error message 20009, severity 9:\\nUnable to connect: …')`` and
SQLAlchemy answers a misspelt driver with ``Can't load plugin: sqlalchemy.dialects:…``.
Neither names the server and port that were tried or what to change. These functions
turn them into a sentence that does: the host and port, the database, the driver, the
reason, and the fix, without the password (the URL is a vault secret).
"""

from __future__ import annotations

import importlib
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

#: The production URL, as the connection form suggests it.
EXAMPLE_URL = "mssql+pymssql://user:password@sqlserver:1433/MAS500_app"

#: SQL Server's default TCP port (FreeTDS uses it when the URL gives none).
SQL_SERVER_PORT = 1433

#: DB-API modules of the SQLAlchemy dialects a Sage 500 URL may name.
_DRIVER_MODULES = {
    "pymssql": "pymssql",
    "pyodbc": "pyodbc",
    "aioodbc": "aioodbc",
    "psycopg": "psycopg",
    "psycopg2": "psycopg2",
    "pysqlite": "sqlite3",
}


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be used to reach Sage 500 from here, or None when its dialect and
    driver are installed. Checked before an engine is built, so a misspelt or missing
    driver is a settings message, not a stack trace on the first read."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return (
            "The Sage 500 database URL is not a database URL; enter it as "
            f"{EXAMPLE_URL} under Accounting Integration → Sage 500"
        )
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        return (
            f"The Sage 500 database URL names the driver {parsed.drivername!r}, which ledgerlink "
            f"does not know; for SQL Server use mssql+pymssql (installed with ledgerlink), e.g. "
            f"{EXAMPLE_URL}"
        )
    driver = str(dialect.driver)
    module = _DRIVER_MODULES.get(driver, driver)
    try:
        importlib.import_module(module)
    except ImportError:
        return (
            f"The Sage 500 database URL uses the driver {driver} ({parsed.drivername}), which "
            f"is not installed on this server; use mssql+pymssql (installed with ledgerlink), "
            f"e.g. {EXAMPLE_URL}, or install {module}"
        )
    return None


def where(url: str | URL) -> str:
    """``host:port/database (driver)`` of a URL, without its credentials."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return f"{parsed.database or 'memory'} (sqlite)"
    port = parsed.port or (SQL_SERVER_PORT if parsed.get_backend_name() == "mssql" else None)
    address = f"{parsed.host or 'localhost'}:{port}" if port else str(parsed.host or "localhost")
    driver = parsed.get_driver_name()
    return f"{address}/{parsed.database or ''} (driver {driver})"


def driver_message(exc: BaseException) -> str:
    """The driver's own words for a failure, on one line: pymssql's bytes message decoded
    and its DB-Lib boilerplate dropped."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    if len(args) == 1 and isinstance(args[0], tuple):  # pymssql's connect errors nest them
        args = args[0]
    if len(args) == 2 and isinstance(args[1], bytes | str):
        text = args[1].decode(errors="replace") if isinstance(args[1], bytes) else args[1]
        pieces = (part.strip() for line in text.splitlines() for part in line.split("DB-Lib"))
        lines = [
            piece
            for piece in pieces
            if piece and not piece.startswith(("error message", "General SQL Server error"))
        ]
        if lines:
            return "; ".join(dict.fromkeys(lines))[:300]
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]


def connect_failure(url: str | URL, exc: BaseException, *, unreachable: bool) -> str:
    """The operator's message for a connection that failed: where, why, and what to do."""
    place = where(url)
    reason = driver_message(exc)
    if unreachable:
        return (
            f"cannot connect to Sage 500's database server at {place}: {reason}. Check the "
            "host and port in the database URL, that SQL Server is running and accepts TCP/IP "
            "connections on that port (SQL Server Configuration Manager), and that no firewall "
            "blocks this server"
        )
    return (
        f"cannot connect to Sage 500's database at {place}: {reason}. Check the user name, "
        "password and database name in the database URL, and that the user may sign in to "
        "that database"
    )
