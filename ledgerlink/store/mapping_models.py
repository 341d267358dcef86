"""Versions of mapping specs and shared tables edited through the portal or the API.

Each save is a new row; exactly one row per name is active (a partial unique index
guarantees it). A rollback copies an earlier version's text into a new version, so the
history only ever grows and every run can name the version it used.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import UTCDateTime, utcnow


class MappingVersion(Base):
    __tablename__ = "mapping_versions"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        Index(
            "uq_mapping_versions_active_name",
            "name",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # "mapping" or "table"
    version: Mapped[int] = mapped_column(Integer)
    yaml_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(254))
    comment: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The version whose text a rollback restored (0: the shipped default).
    rolled_back_from: Mapped[int | None] = mapped_column(Integer)
