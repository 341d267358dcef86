"""The installation at a glance: how many users and connections it has and how long its
audit chain is (the portal's dashboard)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledgerlink.store.models import AuditHead, Connection, User


def counts(session: Session) -> dict[str, int | None]:
    return {
        "users": session.scalar(select(func.count()).select_from(User)),
        "connections": session.scalar(select(func.count()).select_from(Connection)),
        "active_connections": session.scalar(
            select(func.count()).select_from(Connection).where(Connection.is_active)
        ),
        "audit_entries": session.scalar(select(AuditHead.seq).where(AuditHead.id == 1)),
    }
