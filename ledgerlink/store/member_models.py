"""Tables of the member registry and of member ↔ customer-account links.

Search columns (``*_key``) hold the lower-cased, accent-free form of names and e-mails
and ``phone_rev`` the phone's digits reversed, so that "name starts with", "e-mail starts
with" and "phone ends with" are all prefix ranges on a plain btree index; that is what
keeps search fast on 100,000 members on SQLite as well as PostgreSQL. On PostgreSQL the
key columns use the "C" collation so that a prefix range is exactly a prefix match.

``member_links`` is history: a link is never deleted, unlinking stamps ``unlinked_at``.
Partial unique indexes enforce, among active links, one customer per member and
connection and one member per customer: the database, not the code, makes a double link
impossible even with two workers racing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import JSONDocument, UTCDateTime, utcnow


def _key(length: int) -> TypeEngine[str]:
    """A search-key column: binary ordering on both back-ends."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


ACTIVE_LINK = text("unlinked_at IS NULL")


class MembershipLevelRow(Base):
    __tablename__ = "membership_levels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    annual_fee_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class MemberRow(Base):
    __tablename__ = "members"
    __table_args__ = (
        Index("ix_members_last_key", "last_key", "first_key"),
        Index("ix_members_first_key", "first_key"),
        Index("ix_members_org_key", "org_key"),
        Index("ix_members_email_key", "email_key"),
        Index("ix_members_phone_rev", "phone_rev"),
        Index("ix_members_sort_key", "sort_key", "id"),
        Index("ix_members_level_id", "level_id"),
        Index("ix_members_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(_key(20), unique=True)
    account_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    level_id: Mapped[int] = mapped_column(ForeignKey("membership_levels.id"))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    organisation: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(20), default="")
    address_line1: Mapped[str] = mapped_column(String(200), default="")
    address_line2: Mapped[str] = mapped_column(String(200), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    region: Mapped[str] = mapped_column(String(100), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    country: Mapped[str] = mapped_column(String(2), default="US")
    # search columns, derived from the above by members.registry
    first_key: Mapped[str] = mapped_column(_key(100), default="")
    last_key: Mapped[str] = mapped_column(_key(100), default="")
    org_key: Mapped[str] = mapped_column(_key(100), default="")
    sort_key: Mapped[str] = mapped_column(_key(210), default="")
    email_key: Mapped[str] = mapped_column(_key(254), default="")
    phone_rev: Mapped[str] = mapped_column(_key(20), default="")
    #: SHA-256 of the normalised content: an import compares it to skip unchanged rows.
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberLinkRow(Base):
    """A member linked to a customer in one connection's system, from ``linked_at`` until
    ``unlinked_at`` (NULL while active)."""

    __tablename__ = "member_links"
    __table_args__ = (
        Index("ix_member_links_member", "member_id", "connection_id"),
        Index(
            "uq_member_links_active_customer",
            "connection_id",
            "customer_id",
            unique=True,
            sqlite_where=ACTIVE_LINK,
            postgresql_where=ACTIVE_LINK,
        ),
        Index(
            "uq_member_links_active_member",
            "member_id",
            "connection_id",
            unique=True,
            sqlite_where=ACTIVE_LINK,
            postgresql_where=ACTIVE_LINK,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    system: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[str] = mapped_column(String(100))
    customer_number: Mapped[str] = mapped_column(String(100), default="")
    customer_name: Mapped[str] = mapped_column(String(200), default="")
    #: True when ledgerlink created the customer for this link (else an existing one).
    created_customer: Mapped[bool] = mapped_column(Boolean, default=False)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    linked_by: Mapped[str] = mapped_column(String(254))
    unlinked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unlinked_by: Mapped[str | None] = mapped_column(String(254))
    unlink_reason: Mapped[str | None] = mapped_column(String(500))


class BulkLinkRun(Base):
    """One bulk create-and-link: which members (``items``), where, and how far it got."""

    __tablename__ = "bulk_link_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|finished
    requested_by: Mapped[str] = mapped_column(String(254))
    selection: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    total: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    linked_count: Mapped[int] = mapped_column(Integer, default=0)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    @property
    def done(self) -> int:
        return self.created_count + self.linked_count + self.skipped_count + self.failed_count


class BulkLinkItem(Base):
    """One member of a bulk run; ``status`` moves from ``pending`` exactly once, in the
    same transaction as the link it records, which is what makes a resumed run safe."""

    __tablename__ = "bulk_link_items"
    __table_args__ = (
        UniqueConstraint("run_id", "member_id"),
        Index("ix_bulk_link_items_run_status", "run_id", "status", "position"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("bulk_link_runs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    #: pending | created | linked | skipped | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    customer_id: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
