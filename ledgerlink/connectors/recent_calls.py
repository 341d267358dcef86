"""What this process's calls to each upstream did in the last few minutes.

The dashboard's *Upstream health* reads it, so a system that drops every connection shows
as failing at once: the poll and the postings only record a failure once their retries
are spent (a PayTrace poll retries for up to 90 s), and a ledger records none at all
while its calls are being retried. ``connectors/http.py`` notes every call's outcome
here, beside the Prometheus counter of the same outcomes.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from ledgerlink.clock import SYSTEM_CLOCK, Clock

#: Outcomes that mean the system could not do its job (a refused or unknown record is the
#: system answering, not failing; a rate limit is waited out).
FAILURES = frozenset(
    {"connection_error", "connection_dropped", "timeout", "unavailable", "authexpired"}
)
#: Each failing outcome in finance words.
DESCRIPTIONS = {
    "connection_error": "could not be reached",
    "connection_dropped": "cut the connection before answering",
    "timeout": "did not answer in time",
    "unavailable": "answered that it is unavailable",
    "authexpired": "refused our sign-in",
}
WINDOW = timedelta(minutes=5)
_KEPT = 1000  # outcomes kept per system (a busy system's window is still read whole)


@dataclass(frozen=True)
class RecentCalls:
    """A system's calls in the window: how many, how many failed, and the newest one."""

    system: str
    window: timedelta
    calls: int
    failed: int
    last_outcome: str
    last_at: datetime
    last_failure: str  # the newest failing outcome, "" when none failed

    @property
    def failing(self) -> bool:
        """The newest call failed, or at least half of the window's calls did."""
        return self.last_outcome in FAILURES or (self.calls > 0 and 2 * self.failed >= self.calls)

    def describe(self) -> str:
        minutes = int(self.window.total_seconds() // 60)
        why = DESCRIPTIONS.get(self.last_failure, self.last_failure)
        return (
            f"{self.failed} of {self.calls} calls in the last {minutes} min failed "
            f"(newest at {self.last_at:%H:%M:%S} UTC: {why})"
        )


class CallLog:
    """Timestamped outcomes per system, thread-safe (jobs call from their own threads)."""

    def __init__(self, window: timedelta = WINDOW, clock: Clock = SYSTEM_CLOCK) -> None:
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._calls: dict[str, deque[tuple[datetime, str, str]]] = {}

    def note(self, system: str, outcome: str, origin: str = "") -> None:
        """One call to ``system`` at ``origin`` (see :func:`origin_of`) ended in ``outcome``."""
        with self._lock:
            calls = self._calls.setdefault(system, deque(maxlen=_KEPT))
            calls.append((self.clock.now(), outcome, origin))

    def recent(self, system: str, origin: str | None = None) -> RecentCalls | None:
        """The system's calls in the window (only those to ``origin`` when given, so a
        *Test connection* of a mistyped address does not mark the live one failing);
        None when it was not called lately."""
        since = self.clock.now() - self.window
        with self._lock:
            calls = [
                (at, outcome)
                for at, outcome, to in self._calls.get(system, ())
                if at >= since and (origin is None or to == origin)
            ]
        if not calls:
            return None
        failures = [outcome for _, outcome in calls if outcome in FAILURES]
        last_at, last_outcome = calls[-1]
        return RecentCalls(
            system,
            self.window,
            len(calls),
            len(failures),
            last_outcome,
            last_at,
            failures[-1] if failures else "",
        )


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url``: which server of a system a call went to."""
    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
    return f"{parsed.scheme}://{parsed.host}:{port}"


#: The process's log, next to the process's Prometheus counters.
RECENT_CALLS = CallLog()
