"""Before an operator charges an invoice: an earlier charge of it with no outcome yet.

A charge is written ``sending`` before PayTrace is asked, and stays so if the process
died; it ends ``unknown`` when PayTrace did not answer in time. Either may have taken the
customer's money: the invoice's balance in the ledger drops only once the sale is posted,
so charging the balance again could charge the card twice. :func:`settle_before_charging`
asks PayTrace's own record first (:func:`~ledgerlink.payments.lapsed_claims.find_started_sale`,
as pay links and autopay do), and refuses, naming the earlier charge, while the answer
could still change or says the invoice was charged.

Operator charges are settled here once their lease has lapsed: before the invoice is
charged again, and every minute by :func:`settle_lapsed_operator_charges` (so a charge
nobody retries does not stay "unknown" on the invoice's page). Pay-link and autopay
charges have their own settling, minutely, with their own words for the payer; here they
only hold the operator's charge back until they are settled.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_db_thread, reading
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.domain.money import Money
from ledgerlink.invoice_requests.states import KEY_PREFIX as AUTOPAY_KEY_PREFIX
from ledgerlink.paylinks.links import KEY_PREFIX as PAYLINK_KEY_PREFIX
from ledgerlink.payments.charge_outcomes import ChargeRefused, settle_sending_charge
from ledgerlink.payments.lapsed_claims import (
    SETTLER,
    find_started_sale,
    lapsed_before,
    outcome_from_record,
)
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.payments.targets import PaymentTargets
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentCharge

#: A charge's states that wait for PayTrace's record: a crash left it ``sending``, or
#: PayTrace did not answer in time (``unknown``: the sale may have gone through).
UNSETTLED = ("sending", "unknown")
#: Charges another part of ledgerlink settles (pay links, autopay), by key.
SETTLED_ELSEWHERE = (PAYLINK_KEY_PREFIX, AUTOPAY_KEY_PREFIX)
#: How the audit chain names an operator's charge settled before charging again.
SETTLED_ACTION = "payment.charge.settled"


@dataclass(frozen=True)
class _Earlier:
    id: int
    key: str
    status: str
    amount: Money
    requested_at: dt.datetime
    invoice_number: str
    gateway_connection_id: int | None

    def described(self) -> str:
        when = self.requested_at.strftime("%Y-%m-%d %H:%M UTC")
        return f"the charge of {self.amount.format_plain()} {self.amount.currency} made {when}"


def _earlier(charge: PaymentCharge) -> _Earlier:
    return _Earlier(
        charge.id,
        charge.idempotency_key,
        charge.status,
        Money(charge.amount_minor, charge.currency),
        charge.requested_at,
        charge.invoice_number,
        charge.gateway_connection_id,
    )


def _unsettled(session: Session, invoice_number: str) -> list[_Earlier]:
    return [
        _earlier(charge)
        for charge in session.scalars(
            select(PaymentCharge)
            .where(
                PaymentCharge.invoice_number == invoice_number,
                PaymentCharge.status.in_(UNSETTLED),
            )
            .order_by(PaymentCharge.id)
        )
    ]


def _lapsed_operator_charges(session: Session, before: dt.datetime) -> list[_Earlier]:
    query = (
        select(PaymentCharge)
        .where(
            PaymentCharge.status.in_(UNSETTLED),
            PaymentCharge.requested_at < before,
            *(~PaymentCharge.idempotency_key.startswith(p) for p in SETTLED_ELSEWHERE),
        )
        .order_by(PaymentCharge.id)
        .limit(100)
    )
    return [_earlier(charge) for charge in session.scalars(query)]


async def settle_before_charging(
    runtime: Runtime, gateway_connection: Connection, invoice_number: str
) -> None:
    """Settle, or refuse over, every earlier charge of ``invoice_number`` with no outcome
    (see the module docstring). Returns when charging the invoice cannot charge twice."""
    earlier = await reading(runtime.db, lambda session: _unsettled(session, invoice_number))
    lapsed = lapsed_before(runtime)
    lease = runtime.settings.payments_lease_seconds
    for charge in earlier:
        if charge.requested_at >= lapsed:
            raise ChargeRefused(
                "invoice_number",
                f"Invoice {invoice_number} has {charge.described()}, still without an outcome "
                f"from PayTrace; charge again after {lease:g} s, when PayTrace's record of it "
                "is final",
            )
        if charge.key.startswith(SETTLED_ELSEWHERE):
            raise ChargeRefused(
                "invoice_number",
                f"Invoice {invoice_number} has {charge.described()} through a pay link or "
                "autopay, still without an outcome from PayTrace; it is settled from "
                "PayTrace's record within a minute: charge again after that",
            )
        try:
            status, transaction_id, _ = await _settle(runtime, gateway_connection, charge)
        except UpstreamError as exc:
            raise ChargeRefused(
                "invoice_number",
                f"Invoice {invoice_number} has {charge.described()} without an outcome, and "
                f"PayTrace could not be asked whether it went through ({exc.message}); charge "
                "again once PayTrace answers",
            ) from None
        if status == "approved":
            raise ChargeRefused(
                "invoice_number",
                f"Invoice {invoice_number} was charged already: {charge.described()} went "
                f"through (PayTrace transaction {transaction_id}) although PayTrace did not "
                "confirm it then. It is posted with the next poll; nothing new was charged",
            )


async def settle_lapsed_operator_charges(runtime: Runtime) -> Counter[str]:
    """Every minute: settle operator charges left ``sending`` or ``unknown`` past the
    lease from PayTrace's record; counts by outcome (``unread`` when PayTrace could not be
    asked now: the next minute asks again)."""
    counts: Counter[str] = Counter()
    before = lapsed_before(runtime)
    lapsed = await reading(runtime.db, lambda session: _lapsed_operator_charges(session, before))
    targets = PaymentTargets(runtime)  # each gateway connection read once per pass
    try:
        for charge in lapsed:
            try:
                gateway = await targets.paytrace_connection(charge.gateway_connection_id)
                status, _, kept = await _settle(runtime, gateway, charge)
                if not kept:
                    status = "taken"
            except (UpstreamError, PaymentProblem):
                status = "unread"
            counts[status] += 1
    finally:
        await targets.aclose()
    return counts


async def _settle(
    runtime: Runtime, gateway_connection: Connection, charge: _Earlier
) -> tuple[str, str | None, bool]:
    """Record what PayTrace's record says of ``charge``: (status, transaction id, whether
    this call recorded it: False when another settler got there first; the status is
    PayTrace's either way). Raises UpstreamError when PayTrace cannot be read."""
    started = await find_started_sale(runtime, gateway_connection, charge.key)
    invoice_number = charge.invoice_number
    amount = f"{charge.amount.format_plain()} {charge.amount.currency}"
    status, transaction_id, message = outcome_from_record(
        started, "Nothing was charged: PayTrace has no sale for this charge"
    )
    if started is None:
        finding = (
            f"PayTrace has no sale for the charge of {amount} for invoice {invoice_number} "
            f"(left {charge.status}): nothing was charged, so the invoice could be charged again"
        )
    else:
        finding = (
            f"PayTrace's record shows the charge of {amount} for invoice {invoice_number} "
            f"(left {charge.status}) as transaction {started.transaction_id}: {message}"
        )
    kept = await in_db_thread(
        lambda: settle_sending_charge(
            runtime,
            charge.id,
            status=status,
            transaction_id=transaction_id,
            message=message,
            # PayTrace's export brings the sale itself: the poller posts it once
            event=None,
            actor=SETTLER.actor,
            action=SETTLED_ACTION,
            finding=finding,
            was=charge.status,
        )
    )
    return status, transaction_id, kept
