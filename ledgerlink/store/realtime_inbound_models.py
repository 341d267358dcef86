"""The table of near-real-time reads from the ledgers (issue 21, ledgers → registry).

``realtime_polls`` holds, per ledger connection, whether its customers are polled, how
often, and where the last poll got to: the cursor (the newest change time the ledger
itself reported, never our clock), the live poll chain's number (a poll job whose number
is not the connection's current one stands down, so one chain runs however many were
started), when the next poll is due and what the last one cost in requests.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ledgerlink.store.models import Base
from ledgerlink.store.types import UTCDateTime, utcnow

#: Seconds between polls unless the connection's settings say otherwise.
DEFAULT_INTERVAL_SECONDS = 30


class RealtimePoll(Base):
    __tablename__ = "realtime_polls"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: what the administrator asked for; the budget may stretch it (``effective_seconds``)
    interval_seconds: Mapped[int] = mapped_column(Integer, default=DEFAULT_INTERVAL_SECONDS)
    #: the newest customer change time the ledger reported (its clock), NULL: none yet
    ledger_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the number of the poll chain allowed to run; bumped by each poll as it hands over
    chain: Mapped[int] = mapped_column(BigInteger, default=0)
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: requests the last poll sent to the ledger (the budget is reckoned from it)
    last_requests: Mapped[int] = mapped_column(Integer, default=0)
    #: seconds to the next poll as last decided (the interval, or longer to stay in budget)
    effective_seconds: Mapped[int] = mapped_column(Integer, default=DEFAULT_INTERVAL_SECONDS)
    #: what the last poll did, in words (shown on the connection page)
    last_outcome: Mapped[str] = mapped_column(String(500), default="")
    #: the newest full sync run whose agreement was already marked on members
    agreed_run_id: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
