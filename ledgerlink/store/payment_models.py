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

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import JSONDocument, UTCDateTime, utcnow


class PaymentEvent(Base):
    __tablename__ = "payment_events"
    __table_args__ = (Index("ix_payment_events_status", "status", "id"),)

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
