"""The soak's end checks and figures.

The checks count in the ledger simulator's own state (its SQLite state file, read after it
stopped): every card sale ledgerlink acknowledged is one customer receipt in the business
its pair posts to (0 lost, 0 double), no receipt is there for a sale never sent, and no
member's contact was written twice by the sync (the simulator counts every write of a
contact in ``_writes``: one when the soak created it, one when the sync pushed the new
e-mail). The figures (throughput and lag over time) come from ledgerlink's inbox
(``payment_events``: when each event arrived and when its receipt was acknowledged).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from ledgerlink.sandbox.sbc.store import FILE_NAME

_DIGITS = re.compile(r"(\d{5,})")


@dataclass
class Checks:
    """What the end checks found; ``failures`` names each failed check."""

    sent: int
    posted_once: int
    lost: list[str] = field(default_factory=list)
    double: dict[str, int] = field(default_factory=dict)
    wrong_business: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    members: int = 0
    members_updated: int = 0
    members_written_twice: list[str] = field(default_factory=list)
    #: what was still waiting when the drain timed out (None: everything finished)
    undrained: str | None = None

    @property
    def failures(self) -> list[str]:
        found = []
        if self.undrained:
            found.append(f"not drained in time: {self.undrained}")
        if self.lost:
            found.append(f"{len(self.lost)} event(s) lost (e.g. {', '.join(self.lost[:5])})")
        if self.double:
            sample = ", ".join(f"{t} x{n}" for t, n in list(self.double.items())[:5])
            found.append(f"{len(self.double)} event(s) posted more than once ({sample})")
        if self.wrong_business:
            found.append(
                f"{len(self.wrong_business)} receipt(s) in another pair's ledger "
                f"(e.g. {', '.join(self.wrong_business[:5])})"
            )
        if self.unexpected:
            found.append(
                f"{len(self.unexpected)} receipt(s) for sales never sent "
                f"(e.g. {', '.join(self.unexpected[:5])})"
            )
        if self.members_written_twice:
            found.append(
                f"{len(self.members_written_twice)} member(s) written twice "
                f"(e.g. {', '.join(self.members_written_twice[:5])})"
            )
        if self.members_updated != self.members:
            found.append(
                f"{self.members - self.members_updated} of {self.members} member(s) not synced"
            )
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "events_sent": self.sent,
            "posted_exactly_once": self.posted_once,
            "lost": len(self.lost),
            "double_posted": len(self.double),
            "in_wrong_ledger": len(self.wrong_business),
            "receipts_for_unsent_sales": len(self.unexpected),
            "members": self.members,
            "members_synced": self.members_updated,
            "members_written_twice": len(self.members_written_twice),
            "undrained": self.undrained,
            "passed": not self.failures,
            "failures": self.failures,
        }


def sbc_records(state_dir: Path, collection: str) -> list[tuple[str, dict[str, Any]]]:
    """(business, record) of one collection, straight from the simulator's state file."""
    with sqlite3.connect(f"file:{state_dir / FILE_NAME}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT business, body FROM records WHERE collection = ?", (collection,)
        ).fetchall()
    return [(business, json.loads(body)) for business, body in rows]


def count(
    state_dir: Path,
    sent: dict[str, str],
    members: int,
) -> Checks:
    """``sent``: transaction id -> the SBC business its receipt belongs in."""
    receipts: dict[str, list[str]] = defaultdict(list)
    for business, payment in sbc_records(state_dir, "contact_payments"):
        if payment.get("_deleted") or payment.get("transaction_type_id") != "CUSTOMER_RECEIPT":
            continue
        found = _DIGITS.findall(str(payment.get("reference") or ""))
        if found:
            receipts[found[-1]].append(business)
    checks = Checks(sent=len(sent), posted_once=0, members=members)
    for transaction, business in sent.items():
        where = receipts.get(transaction, [])
        if not where:
            checks.lost.append(transaction)
        elif len(where) > 1:
            checks.double[transaction] = len(where)
        elif where[0] != business:
            checks.wrong_business.append(transaction)
        else:
            checks.posted_once += 1
    checks.unexpected = sorted(set(receipts) - set(sent))
    for _business, contact in sbc_records(state_dir, "contacts"):
        reference = str(contact.get("reference") or "")
        if not reference.startswith("M") or not reference[1:].isdigit():
            continue
        number = int(reference[1:])
        if contact.get("email") == f"member{number}@example.org":
            checks.members_updated += 1
        # one write when the soak created the contact, one when the sync pushed the e-mail
        if int(contact.get("_writes", 0)) > 2:
            checks.members_written_twice.append(reference)
    return checks


@dataclass
class Timeline:
    """Per-second figures of one run, seconds from the start of traffic."""

    seconds: list[int]
    posted_per_second: list[int]
    lag_p99_seconds: list[float | None]  # by the second the payment arrived (5 s windows)
    lags: list[float]
    statuses: dict[str, int]
    first_received: float
    last_posted: float


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def timeline(pg_dsn: str, started: datetime, transactions: set[str]) -> Timeline:
    """Throughput and lag over time from ledgerlink's inbox. The lag of a payment runs from
    the first delivery of it that arrived (webhook or silent post) to its receipt
    acknowledged by the ledger (``processed_at`` of the event that posted it)."""
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT transaction_id, dedup_key, status, received_at, processed_at "
            "FROM payment_events"
        ).fetchall()
    first: dict[str, datetime] = {}
    posted: dict[str, datetime] = {}
    statuses: Counter[str] = Counter()
    for transaction, key, status, received, processed in rows:
        if transaction not in transactions:
            continue
        if transaction not in first or received < first[transaction]:
            first[transaction] = received
        if not str(key).startswith("hint:"):
            statuses[status] += 1
            if status == "posted" and processed is not None:
                posted[transaction] = processed
    t0 = started.timestamp()
    lags = sorted((posted[t] - first[t]).total_seconds() for t in posted)
    horizon = int(max((p.timestamp() - t0 for p in posted.values()), default=0)) + 1
    per_second = [0] * horizon
    windows: dict[int, list[float]] = defaultdict(list)
    for transaction, done in posted.items():
        per_second[max(0, int(done.timestamp() - t0))] += 1
        arrived = first[transaction].timestamp() - t0
        windows[max(0, int(arrived) // 5 * 5)].append((done - first[transaction]).total_seconds())
    lag_p99: list[float | None] = []
    for second in range(horizon):
        window = windows.get(second // 5 * 5)
        lag_p99.append(round(percentile(sorted(window), 0.99), 3) if window else None)
    return Timeline(
        seconds=list(range(horizon)),
        posted_per_second=per_second,
        lag_p99_seconds=lag_p99,
        lags=lags,
        statuses=dict(statuses),
        first_received=min((f.timestamp() - t0 for f in first.values()), default=0.0),
        last_posted=max((p.timestamp() - t0 for p in posted.values()), default=0.0),
    )
