"""What planning reads for one payment (:class:`~ledgerlink.payments.planning.PlanningFacts`),
from the ledger its PayTrace connection posts to and from what the store recorded."""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy.orm import Session

from ledgerlink.blocking import reading
from ledgerlink.domain.accounts import CustomerAccount, Invoice
from ledgerlink.payments import queue
from ledgerlink.payments.planning import LedgerTarget, ReceiptMapper, RecordedReceipt, SaleProgress
from ledgerlink.payments.targets import OpenLedger, PaymentTargets
from ledgerlink.store.payment_models import PaymentPosting

#: How long a ledger's closed-period date is trusted before it is read again.
LOCKDOWN_READ_SECONDS = 60


class LedgerFacts:
    """What planning may read for one event: the ledger its PayTrace connection posts to
    (opened when first asked, so a payment settled before needing it never opens it), and
    what the store recorded (read in a worker thread)."""

    def __init__(self, targets: PaymentTargets, paytrace_connection_id: int | None) -> None:
        self.targets = targets
        self.paytrace_connection_id = paytrace_connection_id

    async def _opened(self) -> OpenLedger:
        return await self.targets.ledger_for(self.paytrace_connection_id)

    async def target(self) -> LedgerTarget:
        return (await self._opened()).target

    async def find_customer(self, number: str) -> CustomerAccount | None:
        return await (await self._opened()).ledger.find_customer(number)

    async def find_invoice(self, number: str) -> Invoice | None:
        return await (await self._opened()).ledger.find_invoice(number)

    async def lockdown_date(self) -> dt.date | None:
        opened = await self._opened()
        if time.monotonic() - opened.lockdown_read_at > LOCKDOWN_READ_SECONDS:
            opened.lockdown = await opened.ledger.lockdown_date()
            opened.lockdown_read_at = time.monotonic()
        return opened.lockdown

    async def payer(self, paytrace_customer_id: str) -> tuple[str | None, str]:
        return await self.targets.payer(await self._opened(), paytrace_customer_id)

    async def receipt_mapper(self) -> ReceiptMapper:
        return await self.targets.receipt_mapper(await self._opened())

    async def sale_progress(self, sale_id: str) -> SaleProgress:
        return await reading(self.targets.db, lambda session: read_sale_progress(session, sale_id))

    async def event_status(self, dedup_key: str) -> str | None:
        return await reading(
            self.targets.db, lambda session: queue.event_status(session, dedup_key)
        )

    async def refunded_minor(self, sale_id: str) -> int:
        return await reading(
            self.targets.db, lambda session: queue.refunded_minor(session, sale_id)
        )


def read_sale_progress(session: Session, sale_id: str) -> SaleProgress:
    """The sale's receipt, else the statuses of its events.

    The statuses are read *before* the receipt. A sale's receipt and its ``posted`` status
    are committed together, but on PostgreSQL (read committed) each statement sees the
    commits made before it: read the other way round, a sale that finished between the two
    reads showed as posted with no receipt, and its refund was settled as changing
    nothing."""
    statuses = tuple(
        status
        for status in (
            queue.event_status(session, f"{sale_id}:{kind}") for kind in ("sale", "capture")
        )
        if status is not None
    )
    row: PaymentPosting | None = queue.receipt_for(session, sale_id)
    if row is not None:
        return SaleProgress(
            RecordedReceipt(
                posting_id=row.id,
                customer_id=row.customer_id,
                invoice_id=row.invoice_id,
                invoice_number=row.invoice_number,
                amount_minor=row.amount_minor,
                applied_minor=row.applied_minor,
                ledger_id=row.ledger_id,
                reversed=row.reversed_at is not None,
            )
        )
    return SaleProgress(None, statuses)
