"""Finding audit entries by who, which object and when (the portal's Audit page and its
CSV export).

Filters combine (AND); pages go back from an entry by ``seq`` (keyset, not OFFSET, so a
page stays cheap however deep and does not shift while new entries are appended).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ledgerlink.store.models import AuditEntry

#: Rows read per round trip when an export walks every matching entry.
EXPORT_BATCH = 500


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What the reader asked for; ``None`` means "any". Dates are whole UTC days, both
    ends included, because that is how a person names a range ("1 to 7 December")."""

    actor: str | None = None
    action: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    since: date | None = None
    until: date | None = None


def _filtered(query: Select[tuple[AuditEntry]], wanted: AuditFilter) -> Select[tuple[AuditEntry]]:
    if wanted.actor:
        query = query.where(func.lower(AuditEntry.actor) == wanted.actor.lower())
    if wanted.action:
        query = query.where(AuditEntry.action == wanted.action)
    if wanted.entity_type:
        query = query.where(AuditEntry.entity_type == wanted.entity_type)
    if wanted.entity_id:
        query = query.where(AuditEntry.entity_id == wanted.entity_id)
    if wanted.since:
        query = query.where(AuditEntry.at >= datetime.combine(wanted.since, time.min, UTC))
    if wanted.until:
        end = datetime.combine(wanted.until + timedelta(days=1), time.min, UTC)
        query = query.where(AuditEntry.at < end)
    return query


def page(
    session: Session, wanted: AuditFilter, *, limit: int, before_seq: int | None = None
) -> list[AuditEntry]:
    """Up to ``limit`` matching entries older than ``before_seq``, newest first."""
    query = _filtered(select(AuditEntry), wanted).order_by(AuditEntry.seq.desc()).limit(limit)
    if before_seq is not None:
        query = query.where(AuditEntry.seq < before_seq)
    return list(session.scalars(query))


def newer_page_start(
    session: Session, wanted: AuditFilter, *, limit: int, after_seq: int
) -> int | None:
    """The ``before_seq`` that shows the page of matching entries just newer than
    ``after_seq`` (``None`` when there are none: this is the newest page)."""
    seqs = list(
        session.scalars(
            _filtered(select(AuditEntry), wanted)
            .with_only_columns(AuditEntry.seq)
            .where(AuditEntry.seq > after_seq)
            .order_by(AuditEntry.seq.asc())
            .limit(limit)
        )
    )
    if not seqs:
        return None
    return int(seqs[-1]) + 1


def all_matching(session: Session, wanted: AuditFilter) -> Iterator[AuditEntry]:
    """Every matching entry, newest first, read in batches (for the export)."""
    before: int | None = None
    while True:
        batch = page(session, wanted, limit=EXPORT_BATCH, before_seq=before)
        yield from batch
        if len(batch) < EXPORT_BATCH:
            return
        before = batch[-1].seq
