"""Group commit: many small units of work that arrive together share one transaction.

A commit costs far more than the few statements of a typical unit (store an inbound
event, record a posting); under load, one transaction per unit spends most of its time
committing. Callers ``await run(work)`` and are answered once *their* work is committed,
so durability is unchanged: nobody hears "done" before the commit. Work that arrives
while a batch commits waits for the next one (at most ``max_wait`` longer).

If a batch fails, each unit of it is run again in a transaction of its own, so one bad
unit fails alone and the others still commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

T = TypeVar("T")
Work = Callable[[Session], Any]


class GroupCommit(Generic[T]):
    def __init__(self, db: Any, *, max_batch: int = 256, max_wait: float = 0.002) -> None:
        self.db = db
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: asyncio.Queue[tuple[Work, asyncio.Future[Any]]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in a shared transaction; its result once committed."""
        loop = asyncio.get_running_loop()
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._loop(self._queue))
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put_nowait((work, future))
        return await future

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self, queue: asyncio.Queue[tuple[Work, asyncio.Future[Any]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    if loop.time() >= deadline:
                        break
                    await asyncio.sleep(0)
            try:
                results = await asyncio.to_thread(self._together, [w for w, _ in batch])
            except Exception:
                results = await asyncio.to_thread(self._alone, [w for w, _ in batch])
            for (_, future), (ok, value) in zip(batch, results, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _together(self, works: list[Work]) -> list[tuple[bool, Any]]:
        with self.db.transaction() as session:
            return [(True, work(session)) for work in works]

    def _alone(self, works: list[Work]) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = []
        for work in works:
            try:
                with self.db.transaction() as session:
                    results.append((True, work(session)))
            except Exception as exc:  # this unit's own failure, reported to its caller
                results.append((False, exc))
        return results
