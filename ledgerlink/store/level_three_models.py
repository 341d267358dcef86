"""What became of each sale's Level 3 data: sent, refused (by our own sum check or by the
gateway, with the reason in words), failed (the gateway could not be reached), or not
applicable (a card brand without Level 3).

Kept apart from the charge and the inbox event so that every path that charges a card for
an invoice (a stored-card charge, a pay link) records it the same way, by PayTrace
transaction id, and the payment's page can show it. Never holds card data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import JSONDocument, UTCDateTime, utcnow


class LevelThreeOutcome(Base):
    __tablename__ = "payment_level_three"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gateway_connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL")
    )
    transaction_id: Mapped[str] = mapped_column(String(40), unique=True)
    invoice_number: Mapped[str] = mapped_column(String(64))
    #: visa | mastercard | "" (not applicable)
    brand: Mapped[str] = mapped_column(String(16), default="")
    #: sent | refused | failed | not_applicable
    status: Mapped[str] = mapped_column(String(16))
    #: the field a refusal names ("line 2.amount", "line_items[0].quantity"); "" otherwise
    field: Mapped[str] = mapped_column(String(120), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    line_count: Mapped[int] = mapped_column(Integer, default=0)
    #: what was sent (amounts as decimal strings), for the payment's page and audits
    sent: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
