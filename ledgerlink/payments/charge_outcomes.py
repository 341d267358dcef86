"""What a charge of a stored card or a pay link ends as, and how that is kept.

One module for the operator's charge (``payments/charges.py``), the payer's pay-link
charge (``paylinks/paying.py``) and the settling of a charge left without an outcome
(``payments/earlier_charges.py``, ``payments/lapsed_claims.py``), so they cannot drift on
how an outcome is kept: the sale queued for posting once, always audited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import update
from sqlalchemy.orm import Session

from ledgerlink.domain.money import Money
from ledgerlink.payments.enqueue import request_processing
from ledgerlink.payments.inbox import InboundEvent, accept
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.payment_models import PaymentCharge
from ledgerlink.store.types import utcnow

T = TypeVar("T")


class ChargeRefused(ValueError):
    """The charge was not sent; ``field`` names the input and the message the fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ChargeResult:
    id: int
    status: str  # approved | declined | failed | unknown | sending
    transaction_id: str | None
    amount: str
    invoice_number: str
    message: str
    repeated: bool = False
    #: what became of the sale's Level 3 data, in words ("" when no card sale was approved)
    level_three: str = ""


def charge_result(charge: PaymentCharge, repeated: bool = False) -> ChargeResult:
    """The charge as its caller shows it."""
    return ChargeResult(
        id=charge.id,
        status=charge.status,
        transaction_id=charge.transaction_id,
        amount=Money(charge.amount_minor, charge.currency).format_display(),
        invoice_number=charge.invoice_number,
        message=charge.message or "",
        repeated=repeated,
    )


def record_charge_outcome(
    runtime: Runtime,
    charge_id: int,
    *,
    status: str,
    transaction_id: str | None,
    message: str,
    event: InboundEvent | None,
    actor: str,
    action: str,
    answer: Callable[[Session, PaymentCharge], T],
) -> T:
    """Write what PayTrace answered for charge ``charge_id`` in one transaction: its status,
    transaction and message, the approved sale into the inbox (queued for posting) and the
    audit entry ``<action>.<status>``; ``answer`` reads the charge back as its caller shows it.

    One function for the operator's stored-card charge and the payer's pay-link charge, so
    the two cannot drift on how an outcome is kept (the sale posted once, always audited)."""
    with runtime.db.transaction() as session:
        charge = session.get(PaymentCharge, charge_id)
        assert charge is not None
        charge.status = status
        charge.transaction_id = transaction_id
        charge.message = message
        charge.finished_at = utcnow()
        after = {"transaction_id": transaction_id, "message": message}
        _queue_and_audit(runtime, session, charge_id, event, actor, f"{action}.{status}", after)
        session.flush()
        return answer(session, charge)


def settle_sending_charge(
    runtime: Runtime,
    charge_id: int,
    *,
    status: str,
    transaction_id: str | None,
    message: str,
    event: InboundEvent | None,
    actor: str,
    action: str,
    finding: str,
    was: str = "sending",
) -> bool:
    """:func:`record_charge_outcome` for a charge a crash left ``sending`` (or PayTrace's
    silence ``unknown``: ``was``), kept only if it is still so (a conditional update: of
    two settlers, or a settler and a payer resubmitting, one records it, so the sale is
    recorded and queued for posting once). ``finding`` says to finance, in the audit
    entry, what PayTrace's record showed."""
    with runtime.db.transaction() as session:
        kept = session.scalar(
            update(PaymentCharge)
            .where(PaymentCharge.id == charge_id, PaymentCharge.status == was)
            .values(
                status=status,
                transaction_id=transaction_id,
                message=message,
                finished_at=utcnow(),
            )
            .returning(PaymentCharge.id)
            .execution_options(synchronize_session=False)
        )
        if kept is None:
            return False
        after = {"transaction_id": transaction_id, "message": message, "finding": finding}
        _queue_and_audit(runtime, session, charge_id, event, actor, f"{action}.{status}", after)
        return True


def _queue_and_audit(
    runtime: Runtime,
    session: Session,
    charge_id: int,
    event: InboundEvent | None,
    actor: str,
    action: str,
    after: dict[str, str | None],
) -> None:
    """The approved sale into the inbox, queued for posting (once: the inbox keeps one
    event per transaction), and the outcome into the audit chain."""
    if event is not None:
        accept(session, event)
        request_processing(runtime.jobs, session)
    audit.record(
        session,
        actor=actor,
        action=action,
        entity_type="payment_charge",
        entity_id=charge_id,
        after=after,
    )
