"""The one way a test waits for something another thread or process does.

Tests wait on real time only for real concurrency (a worker thread, a server process, a
browser); time that code merely *measures* (backoff, Retry-After, expiry) is moved with
``ledgerlink.clock.ManualClock`` instead. Nothing here imports pytest: worker
subprocesses import modules that use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str,
) -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    Fails with an ``AssertionError`` naming ``what`` was awaited (and the last value
    seen) once ``timeout`` seconds have passed. ``predicate`` is always called at least
    once more after the deadline, so a slow machine never fails a condition that holds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what} (last seen: {value!r})"
            )
        time.sleep(interval)
