"""Synchronous work (database sessions, file I/O) called from ``async def`` code.

SQLAlchemy sessions here are synchronous: run inside a coroutine they stop the event loop
(every other request, the progress bar, concurrent ledger calls) for as long as the query
takes. ``await in_thread(fn, *args)`` runs ``fn`` in the default thread pool instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args, **kwargs)`` in a worker thread, awaited."""
    return await asyncio.to_thread(function, *args, **kwargs)
