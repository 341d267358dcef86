"""How a ledger connection's request budget is shared, and how often polling may poll.

SBC allows about 100 requests a minute per app and business (``connectors/throttle.py``
spaces them on our side; the sandbox refuses the excess with 429). Polling for changed
customers is the one caller that runs all the time, so it gets a fixed share and no more:
payments (receipts for card payments, within seconds) and full syncs (pages of customers
and invoices) keep theirs, and some is left free for bursts and retries. When a poll costs
more requests than its share allows at the configured interval (many changed customers,
so many pages), the interval stretches until the share holds; it shrinks back when polls
get cheap again. A ledger without a request limit (Sage 500, read over SQL) polls at the
configured interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

#: Shares of the connection's requests a minute; what is left is free (headroom).
POLLING_SHARE: Final = 0.20
PAYMENTS_SHARE: Final = 0.30
FULL_SYNC_SHARE: Final = 0.40
#: The setting a ledger kind's settings model declares when its upstream limits requests.
RATE_SETTING: Final = "rate_limit_per_minute"
MIN_INTERVAL: Final = 5
MAX_INTERVAL: Final = 3600


class IntervalInvalid(ValueError):
    """A poll interval that cannot be kept; the message says what to type instead."""

    field = "poll_interval_seconds"


def parse_interval(typed: str) -> int:
    """Seconds between polls from what was typed in the form (5 to 3600)."""
    text = typed.strip()
    if not text.isdigit() or not MIN_INTERVAL <= int(text) <= MAX_INTERVAL:
        raise IntervalInvalid(
            f"poll interval {typed!r}: give a whole number of seconds between {MIN_INTERVAL} "
            f"and {MAX_INTERVAL} (30 is the default)"
        )
    return int(text)


def rate_limit(settings: dict[str, Any], model_defaults: dict[str, Any]) -> int | None:
    """Requests a minute the connection may send (``None``: its upstream sets no limit).
    ``model_defaults`` are the kind's settings defaults: a kind whose settings model has no
    rate limit field is not limited; 0 means the limit was switched off."""
    if RATE_SETTING not in model_defaults:
        return None
    value = settings.get(RATE_SETTING, model_defaults[RATE_SETTING])
    try:
        limit = int(value)
    except (TypeError, ValueError):
        return None
    return limit if limit > 0 else None


def polling_share(per_minute: int) -> int:
    """Requests a minute polling may use (at least one)."""
    return max(1, math.floor(per_minute * POLLING_SHARE))


def stretched_interval(interval: int, requests_per_poll: int, per_minute: int | None) -> int:
    """Seconds to the next poll: the configured interval, or longer when polls that cost
    ``requests_per_poll`` that often would use more than polling's share."""
    if per_minute is None or requests_per_poll <= 0:
        return interval
    needed = math.ceil(60 * requests_per_poll / polling_share(per_minute))
    return min(max(interval, needed), MAX_INTERVAL)


@dataclass(frozen=True)
class BudgetSplit:
    """Requests a minute by caller, for the connection page."""

    per_minute: int | None
    polling: int
    payments: int
    full_syncs: int
    free: int
    #: requests a minute polling uses at its current pace (last poll's cost, interval)
    polling_now: float
    interval: int
    effective: int
    last_requests: int

    @property
    def stretched(self) -> bool:
        return self.effective > self.interval

    def sentences(self) -> list[str]:
        """The split in words, one sentence a line."""
        pace = (
            f"Polling now: every {self.effective} s"
            + (
                f" (stretched from {self.interval} s to stay within its share)"
                if self.stretched
                else ""
            )
            + (
                f", {self.last_requests} request{'s' if self.last_requests != 1 else ''} a poll, "
                f"about {self.polling_now:g} a minute."
                if self.last_requests
                else ", no poll measured yet."
            )
        )
        if self.per_minute is None:
            return [
                "This ledger sets no limit on requests, so polling runs at the interval below "
                "and payments and full syncs are not held back by it.",
                pace,
            ]
        return [
            f"Of the {self.per_minute} requests a minute this connection may send: "
            f"polling up to {self.polling}, payments {self.payments}, full syncs "
            f"{self.full_syncs}, free {self.free}.",
            pace,
        ]


def split(per_minute: int | None, interval: int, effective: int, last_requests: int) -> BudgetSplit:
    polling_now = round(60 * last_requests / effective, 1) if effective and last_requests else 0.0
    if per_minute is None:
        return BudgetSplit(None, 0, 0, 0, 0, polling_now, interval, effective, last_requests)
    polling = polling_share(per_minute)
    payments = math.floor(per_minute * PAYMENTS_SHARE)
    full_syncs = math.floor(per_minute * FULL_SYNC_SHARE)
    free = max(0, per_minute - polling - payments - full_syncs)
    return BudgetSplit(
        per_minute,
        polling,
        payments,
        full_syncs,
        free,
        polling_now,
        interval,
        effective,
        last_requests,
    )
