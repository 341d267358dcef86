"""The guided tour's state: whether this installation shows it, and each user's progress.

One row per user (the steps they have done, and whether they dismissed the tour), kept
apart from ``users`` so that a tour added, changed or removed never touches the accounts
table. The installation's switch is a single row: the demo turns it on, a production
installation has it off until an administrator turns it on.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import JSONDocument, UTCDateTime, utcnow


class TourSetting(Base):
    """The installation's tour switch (a single row, id 1; no row means off)."""

    __tablename__ = "tour_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_by: Mapped[str] = mapped_column(String(254), default="")
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TourProgress(Base):
    """One user's tour: the keys of the steps done, and when it was dismissed (None: it
    shows). No row is a user who has not started: the tour shows, nothing done."""

    __tablename__ = "tour_progress"

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    done: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
