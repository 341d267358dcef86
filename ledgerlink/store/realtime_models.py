"""Tables of real-time synchronisation (issue 21).

* ``realtime_writes``: one row per real-time write (or refusal) in either direction, with
  when the change happened and when it was written, so the Sync page can show the feed
  and the lag from change to write without reading job tables.
* ``member_agreement``: per linked member and connection, when both sides were last known
  to hold the same details (a real-time write, a poll, or a full run that succeeded).
* ``realtime_outbox``: members changed in the registry and not yet written to a ledger
  ("dirty since"). The job queue's ``dedup_key`` refuses a second job while the first is
  running, so a change landing during a write would otherwise be lost: the job compares
  ``seq`` after writing and goes again when the member changed meanwhile.
* ``realtime_settings``: per connection, whether registry changes are written at once
  (default on; a missing row means on).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import UTCDateTime, utcnow


class RealtimeWrite(Base):
    __tablename__ = "realtime_writes"
    __table_args__ = (Index("ix_realtime_writes_written", "written_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: to_ledger | to_registry
    direction: Mapped[str] = mapped_column(String(16))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    #: no foreign key: the feed keeps the write of a member deleted since
    member_id: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: milliseconds from change to write (kept so percentiles need no date arithmetic in SQL)
    lag_ms: Mapped[int] = mapped_column(BigInteger)
    #: written | unchanged | refused | failed
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(1000), default="")


class MemberAgreement(Base):
    __tablename__ = "member_agreement"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    agreed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RealtimeOutbox(Base):
    __tablename__ = "realtime_outbox"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    #: no foreign key: a deleted member's row stays until its deletion is written
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    #: the first change not yet written (the lag is measured from here)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the latest change (a burst is written once the member has been quiet a moment)
    last_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: bumped by every change; the job goes again when it moved during a write
    seq: Mapped[int] = mapped_column(Integer, default=1)
    #: ``seq`` when a job took the row to write it (NULL: not being written); a change
    #: arriving after that starts a new ``changed_at``
    taken_seq: Mapped[int | None] = mapped_column(Integer)
    #: create | update | delete (the latest change's kind)
    action: Mapped[str] = mapped_column(String(16), default="update")


class RealtimeSettings(Base):
    __tablename__ = "realtime_settings"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    outbound_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
