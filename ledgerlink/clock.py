"""Time as a dependency: what backoff, throttling and expiry code asks for the time.

Code that waits (a retry's backoff, a ``Retry-After``, a token bucket) or compares with
"now" (token expiry, leases) takes a :class:`Clock` in its constructor, defaulting to
:data:`SYSTEM_CLOCK`. Production never passes one. Tests pass a :class:`ManualClock`,
whose sleeps return at once and move its time forward, so a test proves that a client
waits 60 s for a ``Retry-After: 60`` without spending the minute.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Wall time, monotonic time, and waiting, from one source."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals and deadlines)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling coroutine for ``seconds``."""
        ...


class SystemClock:
    """The real clock: ``datetime.now(UTC)``, ``time.monotonic`` and real sleeps."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK: Clock = SystemClock()


class ManualClock:
    """A clock that only moves when told to, or when someone sleeps on it.

    Sleeping advances the clock by the requested time and returns at once (an async
    sleep still yields to the event loop once, so other tasks run in between), and
    ``slept`` records every wait, so a test can assert how long code *would* have
    waited. Safe to share between threads.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        if self._start.tzinfo is None:
            raise ValueError("start must be timezone-aware, e.g. datetime(..., tzinfo=UTC)")
        self._elapsed = 0.0
        self._lock = threading.Lock()
        #: Every sleep asked of this clock, in order (seconds).
        self.slept: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        with self._lock:
            return 1_000.0 + self._elapsed

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never back)."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._elapsed += seconds

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        with self._lock:
            self.slept.append(seconds)
            self._elapsed += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def epoch(self) -> float:
        """The clock's wall time as Unix seconds (for code that keeps epoch floats)."""
        return self.now().timestamp()
