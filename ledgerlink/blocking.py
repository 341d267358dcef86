"""Synchronous work (database sessions, file I/O) called from ``async def`` code.

SQLAlchemy sessions here are synchronous: run inside a coroutine they stop the event loop
(every other request, the progress bar, concurrent ledger calls, every payment in flight)
for as long as the query takes, or waits for SQLite's write lock.

* ``await in_thread(fn, *args)`` runs ``fn`` in asyncio's default thread pool.
* ``await reading(db, work)`` / ``await writing(db, work)`` run ``work(session)`` in one
  read session / one write transaction (committed on return) in the **database
  threads**, a small pool of their own: the Sage 500 adapter waits in default-pool
  threads for the ERP's import (seconds each), and a quick read queued behind those
  waits would hold a payment or a reconciliation up for nothing. ``in_db_thread(work)``
  runs any ``work()`` there. SQLite's single writer is kept by ``BEGIN IMMEDIATE`` and its
  busy timeout (``store/db.py``), whichever thread writes.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from sqlalchemy.orm import Session

from ledgerlink.store.db import Database

P = ParamSpec("P")
T = TypeVar("T")

#: The database threads (a session each: within the engine's pool).
_DB_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ledgerlink-db")


async def in_thread(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args, **kwargs)`` in a worker thread, awaited."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def in_db_thread(work: Callable[[], T]) -> T:
    """``work()`` in one of the database threads (with the caller's context variables, as
    ``asyncio.to_thread`` does)."""
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_DB_THREADS, functools.partial(context.run, work))


async def reading(db: Database, work: Callable[[Session], T]) -> T:
    """``work(session)`` in a read session, in a database thread."""

    def run() -> T:
        with db.read() as session:
            return work(session)

    return await in_db_thread(run)


async def writing(db: Database, work: Callable[[Session], T]) -> T:
    """``work(session)`` in a write transaction (committed on return), in a database thread."""

    def run() -> T:
        with db.transaction() as session:
            return work(session)

    return await in_db_thread(run)


__all__ = ["in_db_thread", "in_thread", "reading", "writing"]
