"""How far a run got, per data set: records done and (estimated) records in all.

A run's progress bar must say something from the moment the run starts, not "0 of 0"
until the first data set has been read from the ledger. So a run starts with an
*estimate* per data set, taken from what ledgerlink already holds (the linked members, the
history and profiles the last runs kept), and each data set replaces its estimate with
the real number as soon as it knows it (member details once it has selected the members
to look at, card profiles once they are paired) and sets it to what it did when it ends.

The tally is part of the run's checkpoint (``sync_runs.checkpoint["_progress"]``), so a
resumed run continues the bar from its last committed page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledgerlink.store.member_models import MemberLinkRow
from ledgerlink.store.sync_models import (
    CardProfileBaseline,
    MemberBalance,
    MemberTransaction,
    SyncCursor,
    SyncRecord,
)
from ledgerlink.sync import cursors
from ledgerlink.sync.datasets import DataSet
from ledgerlink.sync.member_details import registry_changed


@dataclass
class Tally:
    """Per data set ``[done, total]``; the run's done and total are the sums."""

    parts: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None) -> Tally:
        parts: dict[str, list[int]] = {}
        for name, value in (stored or {}).items():
            done, total = [*value, 0, 0][:2] if isinstance(value, list) else (0, 0)
            parts[str(name)] = [int(done), int(total)]
        return cls(parts)

    def as_json(self) -> dict[str, list[int]]:
        return {name: list(part) for name, part in self.parts.items()}

    @property
    def done(self) -> int:
        return sum(part[0] for part in self.parts.values())

    @property
    def total(self) -> int:
        return sum(max(part) for part in self.parts.values())

    def _part(self, data_set: str) -> list[int]:
        return self.parts.setdefault(data_set, [0, 0])

    def done_of(self, data_set: str) -> int:
        return self._part(data_set)[0]

    def expect(self, data_set: str, total: int) -> None:
        """The data set's total is now known (or better estimated)."""
        self._part(data_set)[1] = max(total, 0)

    def advance(self, data_set: str, by: int = 1) -> None:
        self._part(data_set)[0] += by

    def set_done(self, data_set: str, done: int) -> None:
        self._part(data_set)[0] = done

    def finish(self, data_set: str) -> None:
        """The data set ended: what it did is its total."""
        part = self._part(data_set)
        part[1] = part[0]


def estimate(
    session: Session,
    connection_id: int,
    data_sets: Iterable[str],
    *,
    source_run_id: int | None = None,
    trigger: str = "manual",
    remap: bool = False,
    overlap_seconds: int = 300,
) -> Tally:
    """What a run about to start will go through, per data set, from what is stored here:

    * member details: every linked member on a first run (or a remap), else the members
      the registry changed since the cursor (the ledger's changes add to it once read);
      a retry or an applied plan: the members it follows up;
    * balances: one per linked member, and one per open invoice the last run saw;
    * transaction history: the documents kept so far (on a first read, about one per
      linked member), or none to begin with on an incremental read;
    * card profiles: the pairs the last run agreed (a retry: the profiles that failed).
    """
    linked = int(
        session.scalar(
            select(func.count())
            .select_from(MemberLinkRow)
            .where(
                MemberLinkRow.connection_id == connection_id, MemberLinkRow.unlinked_at.is_(None)
            )
        )
        or 0
    )
    tally = Tally()
    for name in data_sets:
        data_set = DataSet(name)
        cursor = session.get(SyncCursor, (connection_id, data_set.value))
        if data_set is DataSet.MEMBER_DETAILS:
            tally.expect(
                name,
                _member_details(
                    session,
                    connection_id,
                    cursor,
                    linked,
                    source_run_id,
                    trigger,
                    remap,
                    overlap_seconds,
                ),
            )
        elif data_set is DataSet.BALANCES:
            open_invoices = session.scalar(
                select(func.sum(MemberBalance.open_invoices)).where(
                    MemberBalance.connection_id == connection_id
                )
            )
            tally.expect(name, linked + int(open_invoices or 0))
        elif data_set is DataSet.TRANSACTIONS:
            kept = int(
                session.scalar(
                    select(func.count())
                    .select_from(MemberTransaction)
                    .where(MemberTransaction.connection_id == connection_id)
                )
                or 0
            )
            first_read = cursor is None or cursor.ledger_until is None
            tally.expect(name, max(kept, linked) if first_read else 0)
        else:
            tally.expect(
                name,
                _failed(session, source_run_id, name)
                if trigger == "retry" and source_run_id is not None
                else int(
                    session.scalar(
                        select(func.count())
                        .select_from(CardProfileBaseline)
                        .where(CardProfileBaseline.connection_id == connection_id)
                    )
                    or 0
                ),
            )
    return tally


def _member_details(
    session: Session,
    connection_id: int,
    cursor: SyncCursor | None,
    linked: int,
    source_run_id: int | None,
    trigger: str,
    remap: bool,
    overlap_seconds: int,
) -> int:
    if source_run_id is not None:
        wanted = "failed" if trigger == "retry" else "planned"
        return int(
            session.scalar(
                select(func.count(func.distinct(SyncRecord.member_id))).where(
                    SyncRecord.run_id == source_run_id,
                    SyncRecord.status == wanted,
                    SyncRecord.data_set == DataSet.MEMBER_DETAILS.value,
                )
            )
            or 0
        )
    if remap or cursor is None or cursor.registry_until is None:
        return linked
    since = cursors.since(cursor.registry_until, timedelta(seconds=overlap_seconds))
    return len(registry_changed(session, connection_id, since))


def _failed(session: Session, run_id: int, data_set: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(SyncRecord)
            .where(
                SyncRecord.run_id == run_id,
                SyncRecord.status == "failed",
                SyncRecord.data_set == data_set,
            )
        )
        or 0
    )
