"""The payments inbox: every event from every source, durably, once.

An event is stored before anything else happens to it and the source is answered at
once; jobs do the rest. ``dedup_key`` (the PayTrace transaction and what happened to it,
e.g. ``180000123:sale``) is unique, so the same event pushed three times, polled and
pushed, or replayed out of order is one row. ``payload`` keeps only the fields ledgerlink
uses — never a card number or CSC, which PayTrace does not send and the inbox would refuse.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import JSONDocument, UTCDateTime, utcnow

#: The events still to be worked on, as the partial index of each pair's waiting events
#: states it (a query using that index repeats this condition word for word).
WAITING_SQL = "status IN ('received', 'processing')"
WAITING_EVENTS = text(WAITING_SQL)


class PaymentEvent(Base):
    __tablename__ = "payment_events"
    __table_args__ = (
        Index("ix_payment_events_status", "status", "id"),
        #: each pair's waiting events, oldest first: fair claims (payments/fairness.py)
        Index(
            "ix_payment_events_pair_waiting",
            "connection_id",
            "id",
            sqlite_where=WAITING_EVENTS,
            postgresql_where=WAITING_EVENTS,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL")
    )
    #: silent_post | webhook | poller | dispute | manual
    source: Mapped[str] = mapped_column(String(16))
    #: the source's own id of this delivery (webhook id), for replay protection
    delivery_id: Mapped[str] = mapped_column(String(120), default="")
    transaction_id: Mapped[str] = mapped_column(String(40))
    #: sale | authorization | capture | refund | void | chargeback | dispute_won
    kind: Mapped[str] = mapped_column(String(16))
    dedup_key: Mapped[str] = mapped_column(String(80), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    #: signed (webhook) or read back from PayTrace: only verified events are posted
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    #: received | processing | posted | exception | ignored
    status: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    message: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: a worker holds the event until then; after it, another may take it (kill -9)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: not to be tried before (an out-of-order refund waiting for its sale, a retry backoff)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PaymentPosting(Base):
    """What ledgerlink wrote to a ledger for a payment event: the proof of exactly once.

    ``idempotency_key`` is unique, so a retried posting that finds its key here (or in the
    ledger, through the same key) records nothing twice. Refunds, voids and chargebacks
    find the receipt they act on through ``transaction_id`` of the original sale.
    """

    __tablename__ = "payment_postings"
    __table_args__ = (Index("ix_payment_postings_transaction", "transaction_id", "action"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("payment_events.id", ondelete="CASCADE"))
    ledger_connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL")
    )
    system: Mapped[str] = mapped_column(String(16))
    #: receipt | refund | reversal
    action: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    #: the ledger's id of what was written (SBC contact payment id, Sage 500 CustPmtKey)
    ledger_id: Mapped[str] = mapped_column(String(64), default="")
    transaction_id: Mapped[str] = mapped_column(String(40))
    #: for refunds, voids and chargebacks: the sale they act on
    original_transaction_id: Mapped[str] = mapped_column(String(40), default="")
    customer_id: Mapped[str] = mapped_column(String(100), default="")
    invoice_id: Mapped[str] = mapped_column(String(64), default="")
    invoice_number: Mapped[str] = mapped_column(String(64), default="")
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    applied_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    #: the mapping spec version that produced it (``name@v3`` or ``name@package:…``)
    mapping_version: Mapped[str] = mapped_column(String(160), default="")
    replayed: Mapped[bool] = mapped_column(Boolean, default=False)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: set on a receipt when a void or chargeback took it back
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PaymentException(Base):
    """A payment that needs a person: the reason in plain words and the suggested fix.

    One row per event; a retry that fails again re-opens it with the new reason.
    """

    __tablename__ = "payment_exceptions"
    __table_args__ = (Index("ix_payment_exceptions_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("payment_events.id", ondelete="CASCADE"), unique=True
    )
    #: declined | invoice_not_found | invoice_closed | customer_mismatch | amount_mismatch |
    #: currency_mismatch | period_closed | not_linked | unverified | upstream | chargeback |
    #: nothing_to_reverse | mapping
    reason_code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    fix: Mapped[str] = mapped_column(Text, default="")
    #: open | resolved | ignored
    status: Mapped[str] = mapped_column(String(16), default="open")
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    invoice_number: Mapped[str] = mapped_column(String(64), default="")
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(254))
    resolution: Mapped[str | None] = mapped_column(Text)
    #: e-mail alert sent for it (critical exceptions are sent once)
    alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PaymentPollState(Base):
    """The PayTrace poller's place per connection: exports are read from ``cursor`` minus
    the overlap window, so a transaction PayTrace files late is still seen."""

    __tablename__ = "payment_poll_state"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    cursor: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_found: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    batches_seen: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)


class PaymentCharge(Base):
    """An operator's request to charge a customer's stored PayTrace card for an invoice.

    The request's idempotency key is unique: a double click, a retried API call or a
    reload after a lost answer finds the first request and its outcome instead of
    charging the card twice (PayTrace's own sale call is not idempotent).
    """

    __tablename__ = "payment_charges"
    #: the minutely look for charges left 'sending' or 'unknown' past their lease: few
    #: among many finished ones
    __table_args__ = (Index("ix_payment_charges_status", "status", "requested_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    gateway_connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL")
    )
    paytrace_customer_id: Mapped[str] = mapped_column(String(50))
    invoice_number: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    #: sending | approved | declined | failed | unknown
    status: Mapped[str] = mapped_column(String(16), default="sending")
    transaction_id: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(254))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotificationLog(Base):
    """Every e-mail ledgerlink sent (or failed to send): what, to whom, when.

    It also paces the e-mail: one digest a day, a threshold alert at most once an hour.
    """

    __tablename__ = "notification_log"
    __table_args__ = (Index("ix_notification_log_kind", "kind", "sent_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: digest | alert | threshold | test
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(255))
    recipients: Mapped[str] = mapped_column(Text)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
