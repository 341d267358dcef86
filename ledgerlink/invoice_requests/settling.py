"""What became of an autopay charge whose run was interrupted after it was sent.

The charge path writes a charge (``sending``) under its idempotency key before calling
PayTrace, so a rerun never sends a second sale under the same key; but a run killed in
between leaves that charge ``sending`` with no outcome. Once its claim has lapsed (the
dead run's request has long ended), PayTrace's own record says what happened: a sale
for the invoice on the charged profile since the charge was written is that charge
(adopted, and brought in by the PayTrace poller like any payment); none means the request
never reached PayTrace, and the invoice may be charged under the next key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from ledgerlink.blocking import reading
from ledgerlink.connectors.base import AchGateway
from ledgerlink.domain.accounts import CardOutcome, CardTransactionKind
from ledgerlink.domain.checks import event_id
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentCharge


@dataclass(frozen=True)
class StartedSale:
    transaction_id: str
    approved: bool
    message: str


async def find_started_sale(
    runtime: Runtime, gateway_connection: Connection, key: str
) -> StartedSale | None:
    """PayTrace's sale (card or ACH) for the charge written under ``key``, or None."""
    charge = await reading(
        runtime.db,
        lambda session: session.scalar(
            select(PaymentCharge).where(PaymentCharge.idempotency_key == key)
        ),
    )
    if charge is None:
        return None
    since = charge.requested_at.date() if charge.requested_at else dt.date.today()
    today = dt.datetime.now(dt.UTC).date()
    gateway = runtime.gateway_for(gateway_connection)
    try:
        for sale in await gateway.transactions(since - dt.timedelta(days=1), today):
            if (
                sale.kind is CardTransactionKind.SALE
                and sale.invoice_number == charge.invoice_number
                and sale.customer_id == charge.paytrace_customer_id
            ):
                approved = sale.outcome is CardOutcome.APPROVED
                return StartedSale(
                    sale.id,
                    approved,
                    f"PayTrace {'approved' if approved else 'declined the card'}: "
                    f"{sale.status_message}",
                )
        if isinstance(gateway, AchGateway):
            for check in await gateway.checks(since - dt.timedelta(days=1), today):
                if (
                    check.kind == "SALE"
                    and check.invoice_number == charge.invoice_number
                    and check.customer_id == charge.paytrace_customer_id
                ):
                    return StartedSale(event_id(check.id), not check.declined, check.message)
    finally:
        await gateway.aclose()
    return None
