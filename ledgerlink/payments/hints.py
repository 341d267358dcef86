"""Unsigned pushes are hints to look, never facts.

A silent post says "transaction 180000123 was a sale of 25.00 for invoice 1042". Anyone
who knows the address can send that, so nothing in it is posted. Processing the hint reads
the transaction from PayTrace by id and puts *PayTrace's own record* into the inbox under
the real key (``180000123:sale``), as the poller would a minute later: the hint only makes
the real event sooner. The hint itself is kept apart (its key is ``hint:…``) and ends
``confirmed`` — or ``unverified`` with what disagreed, when PayTrace does not bear it out.
A hint never opens an exception and can never block, change or pre-empt the real event.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgerlink.connectors.base import CardGateway
from ledgerlink.connectors.errors import NotFound
from ledgerlink.payments import queue
from ledgerlink.payments.facts import NotBorneOut, from_payload, from_transaction, payload_of
from ledgerlink.payments.inbox import InboundEvent
from ledgerlink.payments.problems import Deferred, PaymentProblem

#: A transaction may reach PayTrace's export a little after its silent post: look this
#: many times (about a minute in all) before calling the hint unverified.
LOOKS = 6
#: The source of an event that is PayTrace's record, read back by id for a hint.
READ_BACK = "read_back"


def look_again_in(attempt: int) -> float:
    return float(min(2 ** max(attempt, 1), 30))


@dataclass(frozen=True)
class Confirmation:
    """What a hint came to: the real event for the inbox (None when PayTrace does not
    bear the hint out) and the hint's outcome."""

    real: InboundEvent | None
    outcome: queue.Outcome


async def confirm(event: queue.ClaimedEvent, gateway: CardGateway, currency: str) -> Confirmation:
    """Read the hinted transaction from PayTrace; raises :class:`Deferred` while PayTrace
    does not know it yet (up to :data:`LOOKS` tries)."""
    if event.kind not in ("sale", "capture", "authorization", "refund", "void"):
        return _unverified(
            f"A silent post said transaction {event.transaction_id} had a {event.kind}; "
            "chargebacks and won disputes are taken only from the dispute report or a signed "
            "webhook"
        )
    try:
        claimed = from_payload(
            event.transaction_id, event.kind, event.payload, event.received_at.date(), currency
        )
    except PaymentProblem as garbled:  # an amount that is no amount
        claimed, garbled_why = None, garbled.reason
    try:
        transaction = await gateway.transaction(event.transaction_id)
    except NotFound:
        if event.attempts < LOOKS:
            raise Deferred(
                f"PayTrace does not know transaction {event.transaction_id} yet; looking again",
                look_again_in(event.attempts),
            ) from None
        return _unverified(
            f"PayTrace has no transaction {event.transaction_id}: the silent post did not come "
            "from this PayTrace account, so nothing was posted"
        )
    if claimed is None:
        return _unverified(f"The silent post was not readable ({garbled_why}); nothing was posted")
    try:
        read_back = from_transaction(claimed, transaction)
    except NotBorneOut as not_borne_out:
        return _unverified(f"{not_borne_out.reason}; nothing was posted for the silent post")
    real = InboundEvent(
        READ_BACK,
        event.transaction_id,
        event.kind,
        payload_of(read_back.payment, transaction.masked_card),
        verified=True,
        connection_id=event.connection_id,
    )
    if read_back.disagreements:
        return Confirmation(
            real,
            queue.Outcome(
                "unverified",
                f"Silent post disagrees with PayTrace: {'; '.join(read_back.disagreements)}. "
                "PayTrace's record went to the inbox instead",
            ),
        )
    return Confirmation(
        real, queue.Outcome("confirmed", "PayTrace confirmed it; its record went to the inbox")
    )


def _unverified(why: str) -> Confirmation:
    return Confirmation(None, queue.Outcome("unverified", why))
