"""Versions of the reconciliation matching rules saved through the CLI, API or portal.

Like ``mapping_versions``: each save is a new row, at most one row is active (a partial
unique index guarantees it), and a rollback copies an earlier version's text into a new
version, so the history only grows and every match can name the version that made it.
Without an active row, runs use the rules shipped in ``ledgerlink/recon/specs``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import UTCDateTime, utcnow


class ReconRuleSpec(Base):
    __tablename__ = "recon_rule_specs"
    __table_args__ = (
        Index(
            "uq_recon_rule_specs_active",
            "is_active",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    yaml_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The version whose text a rollback restored (0: the shipped default).
    rolled_back_from: Mapped[int | None] = mapped_column(Integer)
