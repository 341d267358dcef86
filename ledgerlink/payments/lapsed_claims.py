"""Claims a crash left without an outcome, and what PayTrace's own record says of them.

Three one-use claims are written before PayTrace is asked to do something that cannot be
asked twice: an autopay charge and a pay-link charge (a ``payment_charges`` row
``sending`` under its idempotency key) and a card-capture link's use (a
``signed_link_uses`` row ``claimed`` under the link's nonce). A process killed between the
claim and its outcome leaves the claim for good: the payer is told "being paid" or "saving
a card at this moment" for ever, and finance sees nothing.

A claim older than the lease (``payments_lease_seconds``, judged on ``runtime.clock``) was
made by a request that has long ended, so PayTrace's record is final and says what
happened: a sale for the charge (:func:`find_started_sale`) is recorded once and never
charged again; none means the request never reached PayTrace and the claim is given back.
The callers (:mod:`ledgerlink.invoice_requests.settling`,
:mod:`ledgerlink.paylinks.paying`, :mod:`ledgerlink.paylinks.capture`) decide what
"recorded" and "given back" mean for their claim.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading
from ledgerlink.connectors.base import AchGateway
from ledgerlink.domain.accounts import CardOutcome, CardTransaction, CardTransactionKind
from ledgerlink.domain.checks import event_id
from ledgerlink.identity.principal import system_principal
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentCharge

#: How the audit chain names what settles a lapsed claim.
SETTLER = system_principal("interruption check")


def lapsed_before(runtime: Runtime) -> dt.datetime:
    """Claims made before this moment have lapsed: the request that made them has ended."""
    return runtime.clock.now() - dt.timedelta(seconds=runtime.settings.payments_lease_seconds)


@dataclass(frozen=True)
class StartedSale:
    """PayTrace's sale for a charge whose outcome was never recorded."""

    transaction_id: str
    approved: bool
    message: str
    #: PayTrace's card record (None for a check)
    record: CardTransaction | None = None


def outcome_from_record(started: StartedSale | None, nothing: str) -> tuple[str, str | None, str]:
    """What a charge without an outcome ends as, from PayTrace's record: (status,
    transaction id, message); ``nothing`` is the message when PayTrace has no sale."""
    if started is None:
        return "failed", None, nothing
    return ("approved" if started.approved else "declined"), started.transaction_id, started.message


@dataclass(frozen=True)
class _Charge:
    invoice_number: str
    profile: str
    amount_minor: int
    requested_on: dt.date
    #: transactions other charges recorded: never this charge's sale
    taken: frozenset[str]


def _charge(session: Session, key: str) -> _Charge | None:
    charge = session.scalar(select(PaymentCharge).where(PaymentCharge.idempotency_key == key))
    if charge is None:
        return None
    taken = session.scalars(
        select(PaymentCharge.transaction_id).where(
            PaymentCharge.invoice_number == charge.invoice_number,
            PaymentCharge.id != charge.id,
            PaymentCharge.transaction_id.is_not(None),
        )
    ).all()
    return _Charge(
        invoice_number=charge.invoice_number,
        profile=charge.paytrace_customer_id,
        amount_minor=charge.amount_minor,
        requested_on=(charge.requested_at or dt.datetime.now(dt.UTC)).date(),
        taken=frozenset(str(t) for t in taken),
    )


async def find_started_sale(
    runtime: Runtime, gateway_connection: Connection, key: str
) -> StartedSale | None:
    """PayTrace's sale (card or ACH) for the charge written under ``key``, or None.

    The sale sent carries the invoice number and, charged by profile, the profile; the
    one for this charge is for the invoice, on the same profile (none for a card typed in
    the hosted fields), of the charge's amount, since the day before the charge was
    written, and not a sale another charge recorded (an earlier attempt of the same
    payer). Raises the gateway's :class:`UpstreamError` when PayTrace cannot be read: the
    claim then stays for the next look."""
    charge = await reading(runtime.db, lambda session: _charge(session, key))
    if charge is None:
        return None
    since = charge.requested_on - dt.timedelta(days=1)
    today = runtime.clock.now().date()
    gateway = runtime.gateway_for(gateway_connection)
    try:
        for sale in await gateway.transactions(since, today):
            if (
                sale.kind is CardTransactionKind.SALE
                and sale.invoice_number == charge.invoice_number
                and sale.customer_id == charge.profile
                and sale.amount.minor == charge.amount_minor
                and sale.id not in charge.taken
            ):
                approved = sale.outcome is CardOutcome.APPROVED
                return StartedSale(
                    sale.id,
                    approved,
                    f"PayTrace {'approved' if approved else 'declined the card'}: "
                    f"{sale.status_message}",
                    sale,
                )
        if isinstance(gateway, AchGateway):
            for check in await gateway.checks(since, today):
                if (
                    check.kind == "SALE"
                    and check.invoice_number == charge.invoice_number
                    and check.customer_id == charge.profile
                    and check.amount.minor == charge.amount_minor
                    and event_id(check.id) not in charge.taken
                ):
                    return StartedSale(event_id(check.id), not check.declined, check.message)
    finally:
        await gateway.aclose()
    return None
