"""Which periodic tick is due: the rule both back-ends follow.

Only the latest tick at or before *now* is ever due. A worker that was down across
several ticks therefore runs the schedule once when it comes back, not once per missed
tick: periodic work (prune, verify, sync) is about the present, and a burst of
catch-up runs would only repeat it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter


def latest_tick(cron: str, now: datetime) -> datetime:
    """The most recent tick of ``cron`` at or before ``now`` (UTC, aware)."""
    now = now.astimezone(UTC)
    ticks = croniter(cron, now)
    if ticks.match(cron, now) and _whole(now, cron):
        return now
    previous: datetime = ticks.get_prev(datetime)
    return previous.astimezone(UTC).replace(fold=0)


def due_tick(cron: str, last_done: datetime | None, now: datetime) -> datetime | None:
    """The tick to run now, or None when the latest one has already been enqueued."""
    tick = latest_tick(cron, now)
    if last_done is not None and tick <= last_done:
        return None
    return tick


def _whole(moment: datetime, cron: str) -> bool:
    # croniter matches at minute (or second) resolution; a tick is an exact instant.
    has_seconds = len(cron.split()) > 5
    return moment.microsecond == 0 and (has_seconds or moment.second == 0)
