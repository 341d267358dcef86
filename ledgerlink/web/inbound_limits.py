"""Rate limits on the anonymous push routes (``/inbound/…``).

Anyone who can reach ledgerlink can send to them, and every silent post accepted costs a
row and a look-up in PayTrace (whose own API budget an attacker could otherwise spend).
So: unsigned silent posts are limited per client address and per PayTrace connection;
a webhook is limited per address only when its signature fails (a source that signs is
authenticated, and its volume is the merchant's own). Refusing a silent post loses
nothing: the poller reads every transaction from PayTrace's exports regardless. A refused
webhook is answered 429 with ``Retry-After``, which Standard Webhooks senders honour.

The client address is the peer's, or the one a configured trusted proxy forwarded
(uvicorn's ``forwarded_allow_ips``); a header from anyone else changes nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


@dataclass(frozen=True)
class Refusal:
    """Over a limit: which one (in words) and when to try again."""

    what: str
    retry_after: int


class InboundLimits:
    """The limits of one process (each web process counts for itself)."""

    def __init__(self, per_address: str, per_connection: str) -> None:
        #: exact (a moving window keeps at most ``amount`` times per key, for its period)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_address = _item(per_address)
        self._per_connection = _item(per_connection)

    def from_address(self, address: str) -> Refusal | None:
        """Count an unsigned push, or a webhook whose signature failed, from ``address``."""
        return self._hit(self._per_address, "address", address, "from this address")

    def for_connection(self, connection_id: int) -> Refusal | None:
        """Count a silent post for a (known) PayTrace connection."""
        where = f"for PayTrace connection {connection_id}"
        return self._hit(self._per_connection, "connection", str(connection_id), where)

    def _hit(self, item: RateLimitItem | None, kind: str, key: str, where: str) -> Refusal | None:
        if item is None or self._limiter.hit(item, kind, key):
            return None
        return self._refusal(item, kind, key, where)

    def _refusal(self, item: RateLimitItem, kind: str, key: str, where: str) -> Refusal:
        reset = self._limiter.get_window_stats(item, kind, key).reset_time
        return Refusal(
            f"more than {item.amount} pushes per {_period(item)} {where}",
            max(1, math.ceil(reset - time.time())),
        )


def _item(text: str) -> RateLimitItem | None:
    """``"100/10 seconds"`` (the limits library's notation); empty means no limit."""
    return parse(text) if text.strip() else None


def check_limit(text: str) -> str:
    """Validate a limit setting, with the notation in the error."""
    try:
        _item(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a rate limit; write it like '100/10 seconds' or '600/minute', "
            "or leave it empty for no limit"
        ) from None
    return text


def _period(item: RateLimitItem) -> str:
    seconds = item.get_expiry()
    return "second" if seconds == 1 else f"{seconds} seconds"
