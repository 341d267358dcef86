"""A vendor server's clock that runs ahead of or behind ours."""

from __future__ import annotations

from datetime import datetime, timedelta

from ledgerlink.clock import SYSTEM_CLOCK


class SkewedClock:
    """The system clock moved by ``offset`` (a negative offset: the vendor is behind)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return SYSTEM_CLOCK.now() + self.offset

    def monotonic(self) -> float:
        return SYSTEM_CLOCK.monotonic()

    def sleep(self, seconds: float) -> None:
        SYSTEM_CLOCK.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await SYSTEM_CLOCK.asleep(seconds)
