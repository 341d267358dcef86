"""A refund reads what became of its sale while another worker may be posting that sale:
whatever the interleaving, it sees either the sale's receipt or a sale still in progress,
never "posted, with nothing posted" (which settled the refund as changing nothing, so the
invoice was not re-opened; seen on PostgreSQL in CI)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, update

from ledgerlink.payments.ledger_facts import read_sale_progress
from ledgerlink.store.db import Database
from ledgerlink.store.payment_models import PaymentEvent, PaymentPosting

SALE = "180000042"


def _sale_being_processed(db: Database) -> int:
    with db.transaction() as session:
        sale = PaymentEvent(
            source="poller",
            transaction_id=SALE,
            kind="sale",
            dedup_key=f"{SALE}:sale",
            verified=True,
            status="processing",
        )
        session.add(sale)
        session.flush()
        return sale.id


def _finish_sale(db: Database, event_id: int) -> None:
    """What queue.finish commits for a posted sale: its receipt and its status, together."""
    with db.transaction() as session:
        session.add(
            PaymentPosting(
                event_id=event_id,
                system="sage500",
                action="receipt",
                idempotency_key=f"paytrace:{SALE}:sale",
                ledger_id="CP-1",
                transaction_id=SALE,
                customer_id="C00001",
                invoice_number="0000000001-IN",
                amount_minor=500,
                applied_minor=500,
                currency="USD",
            )
        )
        session.execute(
            update(PaymentEvent).where(PaymentEvent.id == event_id).values(status="posted")
        )


def test_a_sale_posted_while_its_progress_is_read_is_seen_with_its_receipt(
    db: Database,
) -> None:
    event_id = _sale_being_processed(db)
    statements: list[str] = []

    def finish_after_first_read(*args: Any) -> None:
        statements.append(args[2])
        if len(statements) == 1:  # between the progress read's first and later statements
            _finish_sale(db, event_id)

    with db.read() as session:
        event.listen(db.engine, "after_cursor_execute", finish_after_first_read)
        try:
            progress = read_sale_progress(session, SALE)
        finally:
            event.remove(db.engine, "after_cursor_execute", finish_after_first_read)

    assert len(statements) >= 2, "the sale was finished before the progress read began"
    if progress.receipt is None:
        assert set(progress.statuses) <= {"received", "processing"}, progress.statuses
    else:
        assert progress.receipt.applied_minor == 500
