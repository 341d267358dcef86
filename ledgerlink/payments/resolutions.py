"""What an operator can do with a payment in the exceptions queue; every action audited.

* **retry** — try again as it is (after fixing the cause: a link, the spec, the ledger);
* **apply to another invoice** — post it against the invoice named;
* **put on account** — for an overpayment, apply what is open and leave the rest on the
  customer's account; otherwise post all of it on account (to the payer, or to the
  customer number given);
* **ignore** — nothing is posted; the reason is required and kept.

Re-queued payments go through the same path as new ones (verify, plan, post once): an
action never writes to a ledger itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.payments.enqueue import request_processing
from ledgerlink.payments.problems import REASONS
from ledgerlink.store import audit
from ledgerlink.store.payment_models import PaymentEvent, PaymentException
from ledgerlink.store.types import utcnow

Action = Literal["retry", "apply_to_invoice", "on_account", "ignore"]
ACTIONS: tuple[Action, ...] = ("retry", "apply_to_invoice", "on_account", "ignore")
#: Exceptions whose payment may already be in the ledger (the outcome of the last try is
#: unknown): only retry (with the same idempotency key) or ignore are offered.
_OUTCOME_UNKNOWN = frozenset({"upstream"})
_OVERPAID = frozenset({"amount_mismatch", "invoice_closed"})
#: What fits each reason where it is not everything. No money was collected for a declined
#: card (the customer pays again: a new payment), and an unverified notification is no
#: payment until PayTrace bears it out, so neither can be applied or put on account; a
#: closed period, a set-up or a spec is fixed where it lives and the payment tried again;
#: a chargeback is answered in PayTrace (a won dispute posts by itself).
_FITTING: dict[str, tuple[Action, ...]] = {
    "declined": ("ignore",),
    "unverified": ("retry", "ignore"),
    "upstream": ("retry", "ignore"),
    "period_closed": ("retry", "ignore"),
    "configuration": ("retry", "ignore"),
    "mapping": ("retry", "ignore"),
    "chargeback": ("ignore",),
    # an ACH return: the money never came; the payer pays another way (a new payment)
    "ach_return": ("ignore",),
}
#: How a person's action reads in the exception's resolution.
_DONE = {
    "retry": "Tried again",
    "apply_to_invoice": "Applied to invoice {invoice}",
    "on_account": "Put on account",
}


class ActionRefused(ValueError):
    """The action cannot be taken; ``field`` names the input and the message the fix."""

    def __init__(self, field: str, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        #: the exception itself does not exist (not a refusal of the action)
        self.missing = missing


@dataclass(frozen=True)
class ActionResult:
    exception_id: int
    action: Action
    message: str


#: Each action as an operator says it.
_WORDS: dict[str, str] = {
    "retry": "retry",
    "apply_to_invoice": "apply to an invoice",
    "on_account": "put on account",
    "ignore": "ignore",
}


def allowed_actions(reason_code: str) -> tuple[Action, ...]:
    """The actions that fit an exception's reason (the queue offers these, and
    :func:`take_action` refuses any other)."""
    return _FITTING.get(reason_code, ACTIONS)


def take_action(
    session: Session,
    jobs: Any,
    principal: Principal,
    exception_id: int,
    action: str,
    *,
    invoice_number: str = "",
    customer_number: str = "",
    note: str = "",
) -> ActionResult:
    """Apply ``action`` to an open exception in ``session``'s transaction."""
    found = session.get(PaymentException, exception_id)
    if found is None:
        raise ActionRefused(
            "exception_id", f"There is no payment exception {exception_id}", missing=True
        )
    if found.status != "open":
        raise ActionRefused(
            "exception_id", f"Exception {exception_id} is already {found.status}; reload the queue"
        )
    if action not in ACTIONS:
        raise ActionRefused("action", f"{action!r} is not one of {', '.join(ACTIONS)}")
    if action not in allowed_actions(found.reason_code):
        fitting = " or ".join(_WORDS[a] for a in allowed_actions(found.reason_code))
        raise ActionRefused(
            "action",
            f"{_WORDS[action]} does not fit this exception "
            f"({REASONS.get(found.reason_code, found.reason_code).lower()}); {fitting} it"
            + (
                " (no money was collected: a new payment is needed)"
                if found.reason_code == "declined"
                else ""
            ),
        )
    event = session.get(PaymentEvent, found.event_id)
    assert event is not None  # the foreign key cascades
    payload = dict(event.payload or {})
    override = dict(payload.get("override") or {})
    note = note.strip()
    if action == "ignore":
        if not note:
            raise ActionRefused("note", "Say why the payment is ignored (it is kept in the audit)")
        found.status = "ignored"
        found.resolved_at = utcnow()
        found.resolved_by = principal.actor
        found.resolution = f"Ignored: {note}"
        event.status = "ignored"
        event.message = f"Ignored by {principal.actor}: {note}"
        message = "The payment is ignored; nothing was posted"
    else:
        if action == "apply_to_invoice":
            number = invoice_number.strip()
            if not number:
                raise ActionRefused("invoice_number", "Enter the invoice number to apply it to")
            override = {"invoice_number": number}
            message = f"The payment will be applied to invoice {number}"
        elif action == "on_account":
            if found.reason_code in _OVERPAID:
                override["accept_over"] = True
                message = "What is open on the invoice is paid; the rest goes on account"
            else:
                override = {"on_account": True}
                if customer_number.strip():
                    override["customer_number"] = customer_number.strip()
                message = "The payment will be put on the customer's account"
        else:
            message = "The payment will be tried again"
        if found.reason_code not in _OUTCOME_UNKNOWN:
            payload.pop("plan", None)  # nothing was posted: plan afresh
        payload["override"] = override
        event.payload = payload
        event.status = "received"
        event.attempts = 0
        event.not_before = None
        event.claimed_until = None
        event.message = message
        # kept while the payment is tried again; once it posts, what was posted is added
        found.resolution = (
            _DONE[action].format(invoice=invoice_number.strip())
            + f" by {principal.actor}"
            + (f" ({note})" if note else "")
        )
        request_processing(jobs, session)
    audit.record(
        session,
        actor=principal.actor,
        action=f"payment.exception.{action}",
        entity_type="payment_exception",
        entity_id=found.id,
        after={
            "transaction_id": event.transaction_id,
            "reason_code": found.reason_code,
            "invoice_number": invoice_number.strip(),
            "customer_number": customer_number.strip(),
            "note": note,
        },
    )
    return ActionResult(found.id, action, message)
