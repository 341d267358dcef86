"""Tables of synchronisation: runs and their records, cursors, agreed baselines, and what
the ledgers told us about each member (balances and transaction history).

* ``sync_runs``: one run (or plan) per connection, with its trigger, data sets, progress
  counters and outcome; ``sync_records`` keeps every change and every failure of a run
  with field-level before/after, which is the sync log and the plan.
* ``sync_cursors``: per connection and data set, the moment up to which changes were read;
  the next run reads from it minus an overlap window.
* ``sync_baselines``: per linked member, the field values both sides last agreed on and a
  hash of each side, so an unchanged record costs no write and a change is attributed to
  the side that made it (which is what lets "newest wins" and conflicts work).
* ``member_balances`` and ``member_transactions``: the ledger's view of a member, shown on
  the member's page; rewritten only when their content hash changes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import JSONDocument, UTCDateTime, utcnow


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_connection_created", "connection_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    #: manual (portal) | cli | schedule | retry | api
    trigger: Mapped[str] = mapped_column(String(16))
    data_sets: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Re-apply the member → customer spec to every linked customer (after a spec change),
    #: not only to members that changed.
    remap: Mapped[bool] = mapped_column(Boolean, default=False)
    #: queued | running | finished | failed | cancelled | planned | applied | stale
    status: Mapped[str] = mapped_column(String(16), default="queued")
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, int]] = mapped_column(JSONDocument, default=dict)
    #: Where an interrupted run resumes: data set → opaque checkpoint.
    checkpoint: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    #: For an applied plan: the plan run it applied; for a retry: the run retried.
    source_run_id: Mapped[int | None] = mapped_column(BigInteger)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by: Mapped[str] = mapped_column(String(254))
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    #: The mapping spec versions the run mapped member details with (name → ``name@v3``).
    mapping_versions: Mapped[dict[str, str]] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncRecord(Base):
    """One record a run changed, would change (plan), found in conflict, or failed on."""

    __tablename__ = "sync_records"
    __table_args__ = (Index("ix_sync_records_run", "run_id", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    data_set: Mapped[str] = mapped_column(String(32))
    #: member number (member details, balances) or ledger document (transactions)
    record_key: Mapped[str] = mapped_column(String(120))
    member_id: Mapped[int | None] = mapped_column(BigInteger)
    #: to_ledger | to_registry | both | none
    direction: Mapped[str] = mapped_column(String(16))
    #: update | create | delete | conflict
    action: Mapped[str] = mapped_column(String(16))
    #: planned | done | failed | skipped
    status: Mapped[str] = mapped_column(String(16))
    #: field → {"before": ..., "after": ..., "side": "registry"|"ledger"}
    changes: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    message: Mapped[str] = mapped_column(String(1000), default="")
    fix: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncCursor(Base):
    __tablename__ = "sync_cursors"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    data_set: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: registry side: members changed up to here; ledger side: ledger changes up to here
    registry_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ledger_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SyncBaseline(Base):
    __tablename__ = "sync_baselines"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(String(100))
    values: Mapped[dict[str, str]] = mapped_column(JSONDocument, default=dict)
    registry_hash: Mapped[str] = mapped_column(String(64))
    ledger_hash: Mapped[str] = mapped_column(String(64))
    #: What the ledger held, in the registry's terms, when a lossy spec made it differ
    #: from ``values`` (a name cut to 40 characters); NULL when the two are the same.
    ledger_values: Mapped[dict[str, str] | None] = mapped_column(JSONDocument)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberBalance(Base):
    __tablename__ = "member_balances"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(3))
    balance_minor: Mapped[int] = mapped_column(BigInteger)
    outstanding_minor: Mapped[int] = mapped_column(BigInteger)
    open_invoices: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberTransaction(Base):
    __tablename__ = "member_transactions"
    __table_args__ = (
        Index("ix_member_transactions_member", "member_id", "connection_id", "posted_on"),
    )

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    ledger_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    #: invoice | receipt | refund | credit_note
    kind: Mapped[str] = mapped_column(String(16))
    number: Mapped[str] = mapped_column(String(100), default="")
    posted_on: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    outstanding_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncSettings(Base):
    """What an administrator chose on the Sync Settings page for one connection."""

    __tablename__ = "sync_settings"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    data_sets: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    #: field → registry_wins | ledger_wins | newest_wins
    field_policies: Mapped[dict[str, str]] = mapped_column(JSONDocument, default=dict)
    overlap_seconds: Mapped[int] = mapped_column(Integer, default=300)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SyncSchedule(Base):
    """A sync that runs by itself: daily or weekly at a time, or on a cron expression, in a
    time zone. ``next_run_at`` is what the portal shows and what the scheduler checks."""

    __tablename__ = "sync_schedules"
    __table_args__ = (Index("ix_sync_schedules_due", "enabled", "next_run_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    data_sets: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    #: daily | weekly | cron
    kind: Mapped[str] = mapped_column(String(8))
    #: the schedule as a cron expression in ``timezone`` (daily and weekly are made into one)
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_id: Mapped[int | None] = mapped_column(BigInteger)
    last_outcome: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CardProfileBaseline(Base):
    """What a ledger customer and its PayTrace profile last agreed on (the card-profile
    data set's three-way merge starts from it)."""

    __tablename__ = "card_profile_baselines"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    paytrace_customer_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(100))
    values: Mapped[dict[str, str]] = mapped_column(JSONDocument, default=dict)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
