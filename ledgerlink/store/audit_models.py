"""The outcome of the latest audit chain checks, for the portal, the API and alerts.

One row per kind of check (``incremental``: from the newest signed checkpoint;
``full``: from the first entry). What a check verified is anchored in the checkpoint
file (``store/audit_anchors.py``), not here: these rows only tell people what the last
check found, when, and whether it has been e-mailed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import UTCDateTime


class AuditCheckState(Base):
    __tablename__ = "audit_checks"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # incremental | full
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ok: Mapped[bool | None] = mapped_column(Boolean)
    complete: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The chain verified up to this entry (its hash is ``head_hash``).
    entries: Mapped[int] = mapped_column(BigId, default=0)
    head_hash: Mapped[str | None] = mapped_column(String(64))
    #: The last entry the audit head named when the check ran.
    head_seq: Mapped[int] = mapped_column(BigId, default=0)
    rows_read: Mapped[int] = mapped_column(BigId, default=0)
    #: The signed checkpoint the check started from (None: from the first entry).
    anchor_seq: Mapped[int | None] = mapped_column(BigId)
    problem: Mapped[str | None] = mapped_column(Text)
    first_bad_seq: Mapped[int | None] = mapped_column(BigId)
    checked_by: Mapped[str | None] = mapped_column(String(254))
    #: Set while a full check runs (one at a time).
    running_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The problem last e-mailed, so a broken chain is reported once, not every run.
    alerted_problem: Mapped[str | None] = mapped_column(Text)
