"""Incremental cursors on the vendor's clock, like dlt's incremental state.

A data set's ledger cursor is the newest change time the ledger itself reported for the
records a run read (``updated_at`` of customers, invoices, payments, credit notes), never
our clock at the start of the run. A vendor whose clock runs hours behind ours stamps a
change "earlier" than our run started; compared with its own earlier stamps it is still
later, so it is read. The next run reads from the cursor minus the overlap (changes
committed late within the same second, or by a slow transaction), and the content hashes
make what the overlap reads again write nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


def as_utc(moment: datetime) -> datetime:
    """A vendor timestamp as an aware UTC time (Sage 500 keeps naive UTC datetimes)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass
class HighWater:
    """The newest upstream change time seen so far (``None``: nothing with a time)."""

    newest: datetime | None = None

    def saw(self, moment: datetime | None) -> None:
        if moment is None:
            return
        moment = as_utc(moment)
        if self.newest is None or moment > self.newest:
            self.newest = moment

    def moved_from(self, previous: datetime | None) -> datetime | None:
        """Where the cursor goes after a run that started at ``previous``: never back (a
        run that saw nothing newer, or nothing with a time, keeps the cursor)."""
        if previous is None:
            return self.newest
        if self.newest is None:
            return previous
        return max(as_utc(previous), self.newest)


def since(until: datetime | None, overlap: timedelta) -> datetime | None:
    """Where a run reads from: the cursor minus the overlap (``None``: everything)."""
    return None if until is None else as_utc(until) - overlap
