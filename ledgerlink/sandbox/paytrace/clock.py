"""Time as PayTrace shows it: ``M/D/YYYY h:mm:ss AM`` in the account's time zone."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Clock:
    def __init__(self, zone: str = "UTC", now: Callable[[], float] = time.time) -> None:
        try:
            self.tz: tzinfo = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            self.tz = UTC
        self.now = now

    def local(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, self.tz)

    def today(self) -> date:
        return self.local(self.now()).date()

    def show(self, epoch: float | None) -> str:
        """``6/3/2024 4:05:09 PM``; empty for None."""
        if epoch is None:
            return ""
        moment = self.local(epoch)
        hour = moment.hour % 12 or 12
        half = "AM" if moment.hour < 12 else "PM"
        return (
            f"{moment.month}/{moment.day}/{moment.year} "
            f"{hour}:{moment.minute:02d}:{moment.second:02d} {half}"
        )

    def day_bounds(self, day: date) -> tuple[float, float]:
        """Epoch seconds of the start of ``day`` and of the next day (local time)."""
        start = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        return start.timestamp(), start.timestamp() + 86_400


def parse_us_date(text: object) -> date | None:
    """``MM/DD/YYYY`` (leading zeros optional) or None."""
    if not isinstance(text, str):
        return None
    parts = text.strip().split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or len(parts[2]) != 4:
        return None
    try:
        return date(int(parts[2]), int(parts[0]), int(parts[1]))
    except ValueError:
        return None
