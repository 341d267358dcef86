"""Client-side rate limiting: a token bucket per upstream (and per SBC business).

SBC allows about 100 requests a minute per app and business and does not always send
``Retry-After``; the cheapest 429 is the one never provoked. Tokens are spaced evenly by
default (burst 1) so that no 60-second window, however it is aligned, sees more than the
limit, and a small safety margin absorbs clock differences. A 429 that still gets through
pauses every caller sharing the bucket.

Implemented as GCRA (the "virtual scheduling" form of a token bucket): each caller
reserves its send time under a plain lock and then sleeps outside it, so one bucket can
be shared by threads and by any number of event loops.
"""

from __future__ import annotations

import threading

from ledgerlink.clock import SYSTEM_CLOCK, Clock


class TokenBucket:
    def __init__(
        self,
        per_minute: float,
        *,
        burst: int = 1,
        safety: float = 0.98,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive; use no bucket to disable limiting")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.per_minute = per_minute
        self.clock = clock
        self.interval = 60.0 / (per_minute * safety)
        self.tolerance = (burst - 1) * self.interval
        self._tat = 0.0  # theoretical arrival time of the next request
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def reserve(self) -> float:
        """Reserve the next slot; returns how long the caller must wait before sending."""
        with self._lock:
            now = self.clock.monotonic()
            tat = max(self._tat, now)
            send_at = max(now, tat - self.tolerance)
            self._tat = tat + self.interval
            wait = send_at - now
            self.waited_seconds += wait
            return wait

    async def acquire(self) -> float:
        """Wait for a slot; returns the seconds waited (for the throttled-time metric)."""
        wait = self.reserve()
        if wait > 0:
            await self.clock.asleep(wait)
        return wait

    def pause(self, seconds: float) -> None:
        """The upstream said slow down: nobody sharing this bucket sends for ``seconds``."""
        with self._lock:
            self._tat = max(self._tat, self.clock.monotonic() + seconds)


_shared: dict[tuple[str, ...], TokenBucket] = {}
_shared_guard = threading.Lock()


def shared_bucket(key: tuple[str, ...], per_minute: float) -> TokenBucket:
    """The process-wide bucket for ``key`` (e.g. ``("sbc", business_id)``), so every run
    and worker thread in this process shares one budget per upstream account."""
    with _shared_guard:
        bucket = _shared.get(key)
        if bucket is None or bucket.per_minute != per_minute:
            bucket = _shared[key] = TokenBucket(per_minute)
        return bucket
