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
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.orm import Session

Item = TypeVar("Item")
T = TypeVar("T")
Work = Callable[[Session], Any]


class BatchCommit(Generic[Item, T]):
    """Items that arrive together are stored by one call of ``store(session, items)`` (in
    one transaction, returning one result per item, in order): a store that writes a batch
    with one statement pays the per-statement cost once, not once per item.

    With ``hold_connection``, back-to-back batches share one database connection (held
    while more items are waiting, handed back to the pool once none are): taking a
    connection from the pool, resetting it and building a session for each batch costs
    more than a small batch's own statements.
    """

    def __init__(
        self,
        db: Any,
        store: Callable[[Session, list[Item]], list[T]],
        *,
        max_batch: int = 256,
        max_wait: float = 0.002,
        hold_connection: bool = False,
    ) -> None:
        self.db = db
        self.store = store
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.hold_connection = hold_connection
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Any]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._held: Connection | None = None

    async def submit(self, item: Item) -> T:
        """Store ``item`` with the others that arrive with it; its result once committed."""
        loop = asyncio.get_running_loop()
        task = self._task
        if self._queue is None or task is None or task.done() or task.get_loop() is not loop:
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._loop(self._queue))
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self._release)

    async def _loop(self, queue: asyncio.Queue[tuple[Item, asyncio.Future[Any]]]) -> None:
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
                results = await asyncio.to_thread(self._together, [i for i, _ in batch])
            except Exception:
                results = await asyncio.to_thread(self._alone, [i for i, _ in batch])
            for (_, future), (ok, value) in zip(batch, results, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _together(self, items: list[Item]) -> list[tuple[bool, Any]]:
        with self._transaction() as session:
            return [(True, result) for result in self.store(session, items)]

    def _alone(self, items: list[Item]) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = []
        for item in items:
            try:
                with self._transaction() as session:
                    results.append((True, self.store(session, [item])[0]))
            except Exception as exc:  # this unit's own failure, reported to its caller
                results.append((False, exc))
        return results

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Session]:
        """``db.transaction()``, or the same on the held connection (one batch at a time
        uses it: batches run one after the other)."""
        if not self.hold_connection:
            with self.db.transaction() as session:
                yield session
            return
        connection = self._held
        if connection is None or connection.closed or connection.invalidated:
            self._release()
            connection = self._held = self.db.engine.connect()
            if self.db.is_sqlite:  # take the write lock first, as db.transaction() does
                connection.execution_options(sqlite_begin="IMMEDIATE")
        try:
            with connection.begin(), Session(bind=connection, expire_on_commit=False) as session:
                yield session
                session.flush()
        except BaseException:
            self._release()
            raise
        finally:
            if self._queue is None or self._queue.empty():
                self._release()

    def _release(self) -> None:
        connection, self._held = self._held, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a broken connection is discarded anyway
                connection.close()


class GroupCommit(BatchCommit[Work, Any], Generic[T]):
    """Units of work (``work(session)``) that arrive together share one transaction."""

    def __init__(self, db: Any, *, max_batch: int = 256, max_wait: float = 0.002) -> None:
        super().__init__(db, _each, max_batch=max_batch, max_wait=max_wait)

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in a shared transaction; its result once committed."""
        result: T = await self.submit(work)
        return result


def _each(session: Session, works: list[Work]) -> list[Any]:
    return [work(session) for work in works]
