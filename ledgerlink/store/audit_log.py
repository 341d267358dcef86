"""Reading the audit log: the newest entries, filtered (the portal's Audit page and
``GET /audit``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.store.models import AuditEntry


def recent_entries(
    session: Session,
    *,
    limit: int,
    action: str | None = None,
    actor: str | None = None,
    entity_type: str | None = None,
    before_seq: int | None = None,
) -> list[AuditEntry]:
    """The newest entries first; ``before_seq`` pages back from an entry."""
    query = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if entity_type:
        query = query.where(AuditEntry.entity_type == entity_type)
    if before_seq:
        query = query.where(AuditEntry.seq < before_seq)
    return list(session.scalars(query))
