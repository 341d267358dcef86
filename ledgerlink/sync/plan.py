"""What a run records and resumes from, typed: its log items, the hashes a plan was made
on, and the checkpoint.

They are stored as JSON (``sync_records.changes``, ``sync_runs.checkpoint``) in the shape
earlier versions wrote, so a run interrupted before an upgrade resumes after it and a
plan made before an upgrade can still be applied: ``from_json``/``from_record`` read that
shape, ``as_json``/``row`` write it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.store.sync_models import SyncRecord
from ledgerlink.store.types import utcnow

#: The key under which a planned record keeps the hashes it was planned on.
HASHES_KEY = "_hashes"
#: A data set's checkpoint once it is complete.
DONE = "done"
#: The key under which the checkpoint keeps the run's progress bar.
PROGRESS_KEY = "_progress"


@dataclass(frozen=True, slots=True)
class PlanHashes:
    """Both sides of a member as the plan saw them: applying the plan re-reads them, and
    a side that moved makes the plan stale."""

    registry: str | None  # None: not recorded (never equal to a side read now)
    ledger: str | None

    @classmethod
    def from_changes(cls, changes: Mapping[str, Any]) -> PlanHashes:
        stored = changes.get(HASHES_KEY) or {}
        return cls(stored.get("registry"), stored.get("ledger"))

    def as_json(self) -> dict[str, str | None]:
        return {"registry": self.registry, "ledger": self.ledger}


@dataclass(frozen=True, slots=True)
class RecordItem:
    """One line of a run's log (a ``sync_records`` row); in a plan, one planned change."""

    run_id: int
    data_set: str
    record_key: str
    member_id: int | None
    direction: str
    action: str
    status: str
    #: field → {"before", "after", …} as the log shows it
    changes: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""
    fix: str = ""
    hashes: PlanHashes | None = None
    created_at: datetime = field(default_factory=utcnow)

    def failed(self, message: str, fix: str) -> RecordItem:
        return replace(self, status="failed", message=message, fix=fix)

    def row(self) -> dict[str, Any]:
        """The ``sync_records`` row (for a bulk insert)."""
        changes = dict(self.changes)
        if self.hashes is not None:
            changes[HASHES_KEY] = self.hashes.as_json()
        return {
            "run_id": self.run_id,
            "data_set": self.data_set,
            "record_key": self.record_key,
            "member_id": self.member_id,
            "direction": self.direction,
            "action": self.action,
            "status": self.status,
            "changes": changes,
            "message": self.message,
            "fix": self.fix,
            "created_at": self.created_at,
        }

    @classmethod
    def from_record(cls, record: SyncRecord) -> RecordItem:
        changes = dict(record.changes or {})
        hashes = PlanHashes.from_changes(changes) if HASHES_KEY in changes else None
        changes.pop(HASHES_KEY, None)
        return cls(
            run_id=record.run_id,
            data_set=record.data_set,
            record_key=record.record_key,
            member_id=record.member_id,
            direction=record.direction,
            action=record.action,
            status=record.status,
            changes=changes,
            message=record.message or "",
            fix=record.fix or "",
            hashes=hashes,
            created_at=record.created_at or utcnow(),
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far a run got: data sets complete, and for a data set worked through a page of
    members at a time, the highest member id of the last committed page."""

    done: frozenset[str] = frozenset()
    after: Mapping[str, int] = field(default_factory=dict)
    #: the progress bar as of this checkpoint (see :mod:`ledgerlink.sync.tally`):
    #: data set → [records done, records in all]
    progress: Mapping[str, list[int]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None) -> Checkpoint:
        """Read ``sync_runs.checkpoint``: ``{data set: "done" | last member id}``, and
        the progress under ``_progress`` (absent in runs started before it was kept)."""
        done: set[str] = set()
        after: dict[str, int] = {}
        progress: dict[str, list[int]] = {}
        for data_set, value in (stored or {}).items():
            if data_set == PROGRESS_KEY:
                progress = {str(k): [int(n) for n in v] for k, v in dict(value or {}).items()}
            elif value == DONE:
                done.add(data_set)
            elif value not in (None, ""):
                after[data_set] = int(value)
        return cls(frozenset(done), after, progress)

    def as_json(self) -> dict[str, Any]:
        stored: dict[str, Any] = {k: v for k, v in self.after.items() if k not in self.done}
        stored.update(dict.fromkeys(sorted(self.done), DONE))
        if self.progress:
            stored[PROGRESS_KEY] = {k: list(v) for k, v in self.progress.items()}
        return stored

    def with_progress(self, progress: Mapping[str, list[int]]) -> Checkpoint:
        return replace(self, progress={k: list(v) for k, v in progress.items()})

    def is_done(self, data_set: str) -> bool:
        return data_set in self.done

    def resume_after(self, data_set: str) -> int:
        """The last member id committed (0: start from the beginning)."""
        return 0 if data_set in self.done else self.after.get(data_set, 0)

    def with_done(self, data_set: str) -> Checkpoint:
        return replace(self, done=self.done | {data_set})

    def with_page(self, data_set: str, last_member_id: int) -> Checkpoint:
        return replace(self, after={**self.after, data_set: last_member_id})


@dataclass(frozen=True, slots=True)
class Plan:
    """A dry run's planned changes (applying it re-checks each against its hashes)."""

    run_id: int
    items: tuple[RecordItem, ...]

    @property
    def hashes_by_member(self) -> dict[int | None, PlanHashes]:
        return {i.member_id: i.hashes or PlanHashes(None, None) for i in self.items}


def load_plan(session: Session, run_id: int) -> Plan:
    """The planned records of run ``run_id`` (a dry run), as they were stored."""
    items = tuple(
        RecordItem.from_record(r)
        for r in session.scalars(
            select(SyncRecord)
            .where(SyncRecord.run_id == run_id, SyncRecord.status == "planned")
            .order_by(SyncRecord.id)
        )
    )
    return Plan(run_id, items)
