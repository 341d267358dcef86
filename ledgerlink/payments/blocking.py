"""Synchronous database work from the payments pipeline's async code, off the event loop.

The drain posts many payments at once on one event loop; a query run on the loop itself
would stall every payment in flight while it waits (for SQLite's write lock, say). Work
handed to :func:`reading` or :func:`writing` runs in a worker thread instead.

The threads are the pipeline's own few, not asyncio's default pool: the Sage 500 adapter
waits in default-pool threads for the ERP's import (seconds each), and a quick read queued
behind those waits would hold its payment up for nothing. Each call is one session and one
transaction, as before: SQLite's single writer is kept by ``BEGIN IMMEDIATE`` and its busy
timeout (``store/db.py``), whichever thread writes.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.orm import Session

from ledgerlink.store.db import Database

T = TypeVar("T")

#: Threads for the pipeline's database work (a session each: within the engine's pool).
_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="payments-db")


async def in_thread(work: Callable[[], T]) -> T:
    """``work()`` in one of the pipeline's database threads (with the caller's context
    variables, as ``asyncio.to_thread`` does)."""
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_THREADS, functools.partial(context.run, work))


async def reading(db: Database, work: Callable[[Session], T]) -> T:
    """``work(session)`` in a read session, in a database thread."""

    def run() -> T:
        with db.read() as session:
            return work(session)

    return await in_thread(run)


async def writing(db: Database, work: Callable[[Session], T]) -> T:
    """``work(session)`` in a write transaction (committed on return), in a database thread."""

    def run() -> T:
        with db.transaction() as session:
            return work(session)

    return await in_thread(run)


__all__ = ["in_thread", "reading", "writing"]
