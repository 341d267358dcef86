"""Fair shares of the inbox between integration pairs.

An integration pair is a PayTrace connection (a merchant account) and the ledger its
payments post to; its events carry the PayTrace connection's id. One drain works every
pair, and a pair whose ledger answers slowly (or fails and backs off) must not hold up
the others. So each pair has a budget of its own in a drain, its *pair limit*
(``Settings.payments_concurrency``): at most that many of its payments are posted at
once, and at most twice that many are claimed (the rest stay in the inbox for the next
claim). Claims take the due events round-robin between pairs (each pair's oldest, then
each pair's second oldest, …), so a pair with a backlog of thousands waits its turn
beside a pair with one payment instead of in front of it.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.orm import Session

from ledgerlink.connectors import registry
from ledgerlink.store.payment_models import WAITING_SQL
from ledgerlink.store.types import UTCDateTime

#: A pair's key: its PayTrace connection's id (None for events of no connection).
Pair = int | None

#: Most events a single claim takes, whatever the pairs' rooms add up to.
MAX_CLAIM = 512
#: Pairs looked at per statement (SQLite allows 500 terms in one compound SELECT).
LANES_PER_QUERY = 200


def pick_due(session: Session, now: datetime, room: Callable[[Pair], int]) -> list[int]:
    """Ids of due events to claim, oldest first within a pair and round-robin between
    pairs, at most ``room(pair)`` of each.

    Each pair's oldest are read through the partial index of waiting events by pair, one
    short look a pair: a claim costs the same whether another pair has ten events waiting
    or a hundred thousand."""
    lanes = [(pair, wanted) for pair in _pairs(session) if (wanted := room(pair)) > 0]
    by_pair: dict[Pair, list[int]] = {}
    for chunk in range(0, len(lanes), LANES_PER_QUERY):
        batch = lanes[chunk : chunk + LANES_PER_QUERY]
        params: dict[str, Any] = {"now": now}
        for n, (pair, wanted) in enumerate(batch):
            params[f"n{n}"] = wanted
            if pair is not None:
                params[f"c{n}"] = pair
        shape = tuple(pair is None for pair, _ in batch)
        for event_id, pair in session.execute(_lanes_statement(shape), params).all():
            by_pair.setdefault(pair, []).append(int(event_id))
    picked: list[int] = []
    for turn in range(max((len(ids) for ids in by_pair.values()), default=0)):
        for ids in by_pair.values():
            if turn < len(ids):
                picked.append(ids[turn])
    return sorted(picked[:MAX_CLAIM])


#: ``queue._due`` in SQL: received and not deferred, or processing with a lapsed lease.
_DUE_SQL = (
    "((status = 'received' AND (not_before IS NULL OR not_before <= :now))"
    " OR (status = 'processing' AND claimed_until < :now))"
)


@functools.lru_cache(maxsize=64)
def _lanes_statement(null_lanes: tuple[bool, ...]) -> TextClause:
    """One statement reading each lane's oldest due events, built once per shape: a claim
    runs several times a second, and building (and cache-keying) the same statement as
    SQLAlchemy constructs cost ten times running it."""
    lanes = []
    for n, is_null in enumerate(null_lanes):
        match = "connection_id IS NULL" if is_null else f"connection_id = :c{n}"
        lanes.append(
            "SELECT id, connection_id FROM (SELECT id, connection_id FROM payment_events "  # noqa: S608 - no input in it
            f"WHERE {match} AND {WAITING_SQL} AND {_DUE_SQL} ORDER BY id LIMIT :n{n}) AS lane{n}"
        )
    return text(" UNION ALL ".join(lanes)).bindparams(bindparam("now", type_=UTCDateTime()))


def _pairs(session: Session) -> list[Pair]:
    """Every pair events can belong to: each card gateway connection, and None (events
    whose connection was deleted)."""
    gateways = registry.gateway_kinds()
    rows = session.execute(_CONNECTION_KINDS).all()
    return [*(int(i) for i, kind in rows if kind in gateways), None]


_CONNECTION_KINDS = text("SELECT id, kind FROM connections ORDER BY id")


@dataclass
class PairBudgets:
    """One drain's book of what each pair has in hand, and the gate each pair's payments
    pass to be posted (``limit`` at once per pair)."""

    limit: int
    in_hand: Counter[Pair] = field(default_factory=Counter)
    _gates: dict[Pair, asyncio.Semaphore] = field(default_factory=dict)

    @property
    def claim_most(self) -> int:
        """Events of one pair claimed at most (posting plus waiting their turn)."""
        return self.limit * 2

    def room(self, pair: Pair) -> int:
        return max(0, self.claim_most - self.in_hand[pair])

    def low(self) -> bool:
        """Some pair with events in hand is down to half its limit: time to claim more."""
        return any(0 < n <= self.limit // 2 for n in self.in_hand.values())

    def room_for_new_claims(self, pair: Pair) -> int:
        """A pair above half its limit is left alone until it drains (fewer, bigger
        claims); the others, idle ones included, may take their room."""
        return 0 if self.in_hand[pair] > self.limit // 2 else self.room(pair)

    def taken(self, pair: Pair) -> None:
        self.in_hand[pair] += 1

    def done(self, pair: Pair) -> None:
        self.in_hand[pair] -= 1
        if self.in_hand[pair] <= 0:
            del self.in_hand[pair]

    def gate(self, pair: Pair) -> asyncio.Semaphore:
        if pair not in self._gates:
            self._gates[pair] = asyncio.Semaphore(self.limit)
        return self._gates[pair]
