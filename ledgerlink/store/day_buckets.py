"""The UTC calendar day of a timestamp, in SQL, the same on SQLite and PostgreSQL.

Charts count per day in the database (``GROUP BY`` this expression) rather than reading
every row into Python. SQLite keeps our timestamps as naive UTC text (see
``store/types.UTCDateTime``), PostgreSQL as ``timestamptz`` whose ``date()`` would follow
the session's time zone: both are rendered here as the UTC day, ``'YYYY-MM-DD'`` text.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class utc_day(FunctionElement[str]):  # noqa: N801 - used like a SQL function
    """``utc_day(column)``: the column's UTC calendar day as ``'YYYY-MM-DD'``."""

    type = String()
    inherit_cache = True
    name = "utc_day"


@compiles(utc_day, "sqlite")
def _sqlite_day(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _postgresql_day(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def parse_day(text: str | date) -> date:
    """A day as the database returned it (text from :class:`utc_day`)."""
    return text if isinstance(text, date) else date.fromisoformat(str(text)[:10])
