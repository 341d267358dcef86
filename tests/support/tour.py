"""What `make demo` leaves for the guided tour to point at, made without the simulators:
the demo's users (which turns the tour on), an SBC connection with a bulk link run, a
Sage 500 and a PayTrace connection, a posted card payment, an exception and a
reconciliation of PayTrace with Sage 500."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerlink import demo
from ledgerlink.recon.scopes import ensure_scope
from ledgerlink.store.db import Database
from ledgerlink.store.member_models import BulkLinkRun
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentEvent, PaymentException


@dataclass(frozen=True)
class TourWorld:
    sbc: int
    bulk_run: int
    posted: int
    scope: int


def demo_like(db: Database) -> TourWorld:
    with db.transaction() as session:
        demo.ensure_users(session)
        sbc = Connection(kind="sbc", name="SBC (sandbox)", settings={}, is_active=True)
        gateway = Connection(kind="paytrace", name="PayTrace (sandbox)", settings={})
        sage = Connection(kind="sage500", name="Sage 500 (sandbox)", settings={})
        session.add_all([sbc, gateway, sage])
        session.flush()
        run = BulkLinkRun(connection_id=sbc.id, requested_by="demo")
        posted, failed = (
            PaymentEvent(
                source="poller",
                transaction_id=f"18000000{n}",
                kind="sale",
                dedup_key=f"tour-{n}",
                payload={"amount": "75.00", "currency": "USD", "invoice": invoice},
                verified=True,
                status=status,
                message=message,
            )
            for n, status, invoice, message in (
                (1, "posted", "0000000001-IN", None),
                (2, "exception", "0000099999-IN", "Invoice 0000099999-IN is not in Sage 500"),
            )
        )
        session.add_all([run, posted, failed])
        session.flush()
        session.add(
            PaymentException(
                event_id=failed.id,
                reason_code="invoice_not_found",
                reason="Invoice 0000099999-IN is not in Sage 500",
                invoice_number="0000099999-IN",
                amount_minor=7500,
                currency="USD",
            )
        )
        scope = ensure_scope(session, gateway.id, sage.id, actor="demo")
        return TourWorld(sbc=sbc.id, bulk_run=run.id, posted=posted.id, scope=scope.id)
