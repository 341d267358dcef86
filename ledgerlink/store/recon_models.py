"""Tables of reconciliation: what the four sides held, what a run found, and what people
did about it.

* ``recon_scopes``: a PayTrace connection paired with a ledger connection; everything
  else hangs off a scope.
* ``recon_side_state``: per scope and side, the cursor up to which that side was read and
  how many rows it holds, written in the same transaction as the rows it covers (like the
  sync cursors), so an interrupted read resumes where its data ends.
* ``recon_transactions``, ``recon_batches``, ``recon_receipts``: the PayTrace and ledger
  sides as read, one row per upstream record (upserted: a read never duplicates).
* ``recon_statements`` and ``recon_statement_lines``: imported bank statements. The
  fingerprint is unique, so a statement imported twice is recognised and not counted
  twice; an import is one transaction, so nothing is ever half-imported.
* ``recon_runs``: one run per trigger, with the spec version it used, its ``as_of`` date,
  counts and duration. ``recon_match_segments``: the scope's matches as Parquet
  documents, a full run's base and each later run's additions and removals.
* ``recon_breaks`` and ``recon_break_events``: breaks keyed by the engine's stable id, so
  a rerun updates the same row; the events are the break's history (who, when, how, why),
  which stays after the break is resolved.
* ``recon_periods``: a month of a scope, open or closed (signed off, locked), reopened
  with a reason.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import JSONDocument, UTCDateTime, utcnow


class ReconScope(Base):
    """What is reconciled against what: one card gateway and one ledger."""

    __tablename__ = "recon_scopes"
    __table_args__ = (UniqueConstraint("gateway_connection_id", "ledger_connection_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    gateway_connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE")
    )
    ledger_connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE")
    )
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: the expected card fee schedule and the alert threshold (``recon/fees.py``,
    #: ``recon/notify.py``); empty means the defaults
    settings: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)


class ReconSideState(Base):
    """How far a side was read. ``cursor`` is the largest upstream time seen (never the
    local clock); the next read starts from it minus an overlap."""

    __tablename__ = "recon_side_state"

    scope_id: Mapped[int] = mapped_column(
        ForeignKey("recon_scopes.id", ondelete="CASCADE"), primary_key=True
    )
    #: transactions | batches | receipts | deposits
    side: Mapped[str] = mapped_column(String(16), primary_key=True)
    cursor: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class ReconTransaction(Base):
    """A PayTrace transaction as last read."""

    __tablename__ = "recon_transactions"
    __table_args__ = (
        UniqueConstraint("scope_id", "txn_id"),
        Index("ix_recon_transactions_batch", "scope_id", "batch_number"),
        #: a run finds the rows read again since it last read them (recon/tables.py)
        Index("ix_recon_transactions_read", "scope_id", "read_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope_id: Mapped[int] = mapped_column(ForeignKey("recon_scopes.id", ondelete="CASCADE"))
    txn_id: Mapped[str] = mapped_column(String(40))
    #: sale | refund | void | chargeback
    kind: Mapped[str] = mapped_column(String(16))
    #: approved | declined | voided
    status: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_on: Mapped[date] = mapped_column(Date)
    batch_number: Mapped[str | None] = mapped_column(String(20))
    card_brand: Mapped[str] = mapped_column(String(20), default="")
    original_txn_id: Mapped[str | None] = mapped_column(String(40))
    invoice_number: Mapped[str] = mapped_column(String(64), default="")
    customer_id: Mapped[str] = mapped_column(String(100), default="")
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconBatch(Base):
    """A PayTrace settlement batch: gross - fees - withheld chargebacks = net."""

    __tablename__ = "recon_batches"
    __table_args__ = (
        UniqueConstraint("scope_id", "batch_number"),
        Index("ix_recon_batches_read", "scope_id", "read_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope_id: Mapped[int] = mapped_column(ForeignKey("recon_scopes.id", ondelete="CASCADE"))
    batch_number: Mapped[str] = mapped_column(String(20))
    settled_on: Mapped[date] = mapped_column(Date)
    #: when it settled (None: read before this was kept); orders chargebacks between batches
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    gross_minor: Mapped[int] = mapped_column(BigInteger)
    fees_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    chargebacks_withheld_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    net_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    transaction_count: Mapped[int] = mapped_column(Integer, default=0)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconReceipt(Base):
    """A ledger payment (receipt or refund) as last read, joined with our own posting of
    it (the idempotency key) when ledgerlink posted it."""

    __tablename__ = "recon_receipts"
    __table_args__ = (
        UniqueConstraint("scope_id", "receipt_id"),
        Index("ix_recon_receipts_txn", "scope_id", "txn_id"),
        Index("ix_recon_receipts_read", "scope_id", "read_at"),
        Index("ix_recon_receipts_reversed", "scope_id", "reversed"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope_id: Mapped[int] = mapped_column(ForeignKey("recon_scopes.id", ondelete="CASCADE"))
    receipt_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(120), default="")
    txn_id: Mapped[str | None] = mapped_column(String(40))
    #: receipt | reversal | refund
    kind: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    posted_on: Mapped[date] = mapped_column(Date)
    reversed: Mapped[bool] = mapped_column(Boolean, default=False)
    customer_id: Mapped[str] = mapped_column(String(100), default="")
    reference: Mapped[str] = mapped_column(String(200), default="")
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconStatement(Base):
    """An imported bank statement; the same file (same fingerprint) is imported once."""

    __tablename__ = "recon_statements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope_id: Mapped[int] = mapped_column(ForeignKey("recon_scopes.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    #: bai2 | camt053 | ofx | csv
    format: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(255), default="")
    #: last four characters only (never the whole account number)
    account: Mapped[str] = mapped_column(String(16), default="")
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    opening_minor: Mapped[int | None] = mapped_column(BigInteger)
    closing_minor: Mapped[int | None] = mapped_column(BigInteger)
    line_count: Mapped[int] = mapped_column(Integer, default=0)
    imported_by: Mapped[str] = mapped_column(String(254))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconStatementLine(Base):
    __tablename__ = "recon_statement_lines"
    __table_args__ = (Index("ix_recon_statement_lines_statement", "statement_id", "line_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("recon_statements.id", ondelete="CASCADE"))
    #: ``<fingerprint[:12]>:<line_no>``: the id the engine and breaks use
    line_id: Mapped[str] = mapped_column(String(40), unique=True)
    line_no: Mapped[int] = mapped_column(Integer)
    booked_on: Mapped[date] = mapped_column(Date)
    value_on: Mapped[date | None] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reference: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(500), default="")
    type_code: Mapped[str] = mapped_column(String(32), default="")
    bank_ref: Mapped[str] = mapped_column(String(100), default="")


class ReconRun(Base):
    __tablename__ = "recon_runs"
    __table_args__ = (Index("ix_recon_runs_scope_started", "scope_id", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope_id: Mapped[int] = mapped_column(ForeignKey("recon_scopes.id", ondelete="CASCADE"))
    #: cli | api | portal | schedule | batch_poll | demo
    trigger: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(254))
    spec_version: Mapped[str] = mapped_column(String(160), default="")
    as_of: Mapped[date] = mapped_column(Date)
    #: running | finished | failed
    status: Mapped[str] = mapped_column(String(16), default="running")
    #: matches, breaks, new_breaks, cleared_breaks and per-side row counts
    counts: Mapped[dict[str, int]] = mapped_column(JSONDocument, default=dict)
    #: side → {total_minor, matched_minor, unmatched_minor}
    totals: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class ReconMatchSegment(Base):
    """A step in the history of a scope's matches, as Parquet documents.

    A scope holds about as many matches as sales (a million at the benchmark's scale) and
    a run finds nearly all of them again, so they are not rows: a *base* segment (written
    by a full run) holds every match, and each incremental run after it appends the
    matches it added and the ids it removed. The current matches are the latest base with
    the later segments applied in order (``recon/match_sets.py``); every match names the
    rule and spec version that made it."""

    __tablename__ = "recon_match_segments"
    __table_args__ = (Index("ix_recon_match_segments_scope", "scope_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope_id: Mapped[int] = mapped_column(ForeignKey("recon_scopes.id", ondelete="CASCADE"))
    #: the run that wrote the segment
    run_id: Mapped[int] = mapped_column(ForeignKey("recon_runs.id", ondelete="CASCADE"))
    #: True: the segment holds every match (the earlier segments no longer count)
    base: Mapped[bool] = mapped_column(Boolean)
    added_count: Mapped[int] = mapped_column(Integer)
    removed_count: Mapped[int] = mapped_column(Integer)
    #: the matches added (engine's match columns), Parquet
    added: Mapped[bytes] = mapped_column(LargeBinary)
    #: the match ids removed (one ``match_id`` column), Parquet
    removed: Mapped[bytes] = mapped_column(LargeBinary)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconBreak(Base):
    """A break as the engine named it; the row outlives the runs that found it."""

    __tablename__ = "recon_breaks"
    __table_args__ = (
        UniqueConstraint("scope_id", "break_id"),
        Index("ix_recon_breaks_status", "scope_id", "status", "type"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope_id: Mapped[int] = mapped_column(ForeignKey("recon_scopes.id", ondelete="CASCADE"))
    break_id: Mapped[str] = mapped_column(String(80))
    type: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(16))
    ids: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    #: the rows on the other side the break is measured against (a receipt's transaction)
    other_side: Mapped[str] = mapped_column(String(16), default="")
    other_ids: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    expected_minor: Mapped[int | None] = mapped_column(BigInteger)
    actual_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    as_of_days: Mapped[int] = mapped_column(Integer, default=0)
    #: the day the break's records are dated (as_of - age): the period it belongs to
    occurred_on: Mapped[date] = mapped_column(Date)
    detail: Mapped[str] = mapped_column(Text, default="")
    #: sha256 of the values above as the run set them: a run rewrites a break only when
    #: they changed (recon/keeping.py)
    digest: Mapped[str] = mapped_column(String(64), default="")
    #: open | resolved | explained
    status: Mapped[str] = mapped_column(String(16), default="open")
    assigned_to: Mapped[str | None] = mapped_column(String(254))
    first_run_id: Mapped[int | None] = mapped_column(BigInteger)
    last_run_id: Mapped[int | None] = mapped_column(BigInteger)
    #: False once a later run no longer finds it (the records now agree)
    present: Mapped[bool] = mapped_column(Boolean, default=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(254))
    #: posted_receipt | reversed_duplicate | explained | cleared
    resolution: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    #: when the e-mail alert about it went out (recon/notify.py: once per break)
    alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReconBreakEvent(Base):
    """One step in a break's history: who did what, when, how and why."""

    __tablename__ = "recon_break_events"
    __table_args__ = (Index("ix_recon_break_events_break", "break_pk", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    break_pk: Mapped[int] = mapped_column(ForeignKey("recon_breaks.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(254))
    #: found | assigned | posted_receipt | reversed_duplicate | explained | cleared | reopened
    action: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")


class ReconPeriod(Base):
    """A calendar month of a scope. Closed: signed off and locked against resolutions
    and imports dated in it, until reopened with a reason."""

    __tablename__ = "recon_periods"
    __table_args__ = (UniqueConstraint("scope_id", "period"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope_id: Mapped[int] = mapped_column(ForeignKey("recon_scopes.id", ondelete="CASCADE"))
    #: YYYY-MM
    period: Mapped[str] = mapped_column(String(7))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    #: open | closed
    status: Mapped[str] = mapped_column(String(16), default="open")
    signed_off_by: Mapped[str | None] = mapped_column(String(254))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    close_note: Mapped[str | None] = mapped_column(Text)
    reopened_by: Mapped[str | None] = mapped_column(String(254))
    reopened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopen_reason: Mapped[str | None] = mapped_column(Text)
