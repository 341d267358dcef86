"""Invoice payment requests: what each member's customer wants done when the ledger
raises a new invoice, each new invoice's request (once), and how far each ledger has
been read for new invoices.

``invoice_requests`` is unique per (ledger connection, invoice id): a request is claimed
by inserting its row, so a restart, a rerun or two workers reading the same invoice
find the row instead of asking twice. Its ``state`` says how far the request got (see
:mod:`ledgerlink.invoice_requests.states`); the row is written *before* the e-mail or the
charge it stands for.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import JSONDocument, UTCDateTime, utcnow


class InvoiceRequestSetting(Base):
    """A member's choice for new invoices: ``nothing`` (no row means the same), ``email``
    (a pay link) or ``autopay`` (the stored card or bank profile, on the due date). Autopay
    keeps the consent it was turned on with: how the customer gave it, when, and who
    recorded it (also in the audit chain)."""

    __tablename__ = "invoice_request_settings"

    member_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    mode: Mapped[str] = mapped_column(String(16), default="nothing")
    #: how the customer consented to autopay ("by phone", "signed form"...), "" otherwise
    consent_method: Mapped[str] = mapped_column(String(200), default="")
    consent_given_on: Mapped[date | None] = mapped_column(Date)
    consent_recorded_by: Mapped[str] = mapped_column(String(200), default="")
    consent_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class InvoiceRequest(Base):
    """One new invoice's payment request (an e-mailed pay link or an autopay charge)."""

    __tablename__ = "invoice_requests"
    __table_args__ = (
        UniqueConstraint("connection_id", "invoice_id"),
        Index("ix_invoice_requests_state", "state", "due_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("connections.id", ondelete="CASCADE")
    )
    #: the ledger's id of the invoice (SBC id, Sage 500 InvcKey) and the number users see
    invoice_id: Mapped[str] = mapped_column(String(64))
    invoice_number: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="SET NULL")
    )
    #: email | autopay: the member's setting when the invoice was found
    mode: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(24))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    due_date: Mapped[date | None] = mapped_column(Date)
    #: runs that took the request in hand (a second one follows a crash)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the charge's idempotency key (autopay), derived from connection and invoice
    charge_key: Mapped[str] = mapped_column(String(80), default="")
    transaction_id: Mapped[str] = mapped_column(String(40), default="")
    emailed_to: Mapped[str] = mapped_column(String(254), default="")
    #: what happened, in words finance can act on
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class InvoiceFeedCursor(Base):
    """How far a ledger connection's new invoices have been read: the ledger's own mark
    (SBC ``created_at``, Sage 500 ``InvcKey``), never our clock."""

    __tablename__ = "invoice_feed_cursors"

    connection_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    mark: Mapped[str] = mapped_column(String(64), default="")
    #: the mark of the first read: invoices created before it were open before ledgerlink
    #: looked, so they are never new (a re-read's overlap stops there)
    floor: Mapped[str] = mapped_column(String(64), default="")
    #: ids of the invoices created exactly at the floor (they were there before too)
    floor_ids: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    #: when it was last read (shown to finance; never used to choose what to read)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
