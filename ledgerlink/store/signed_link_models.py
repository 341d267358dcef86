"""What a one-use signed link did: one row a link, keyed by the link's nonce (unique).

A card-capture link saves one card. Its use is *claimed* by inserting this row before
PayTrace is asked to store the card, so two submits of one link at once (a double click, a
resent form, two tabs) cannot both store a card: the second insert breaks the unique key
and its payer is told the link was used. The row becomes ``done`` with what the link did in
the same transaction as the member's PayTrace link and the audit entry; a use that failed
(PayTrace refused the card) is released so the payer can try again. Pay links need no row:
their charges are keyed by ``payment_charges.idempotency_key``. Never holds card data
beyond PayTrace's masked number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base, BigId
from ledgerlink.store.types import JSONDocument, UTCDateTime, utcnow


class SignedLinkUse(Base):
    __tablename__ = "signed_link_uses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: the link's purpose (``card``)
    purpose: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    #: claimed (being used now) | done
    status: Mapped[str] = mapped_column(String(16), default="claimed")
    #: what the link did, as its confirmation page shows it (while claimed: what it is
    #: doing, from which a claim a crash left is settled; paylinks.capture)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
