"""ACH payments (PayTrace checks) in the payments pipeline: inbox events from the checks
export, and the ledger's ACH payment method.

**Events.** Every check the poller reads becomes inbox events under the id
``ach-<check id>`` (:mod:`ledgerlink.domain.checks`), with ``method: ach`` in the payload,
so they post through the same path as card payments, with the same idempotency keys
(``paytrace:ach-9981601:sale``) and checkpoints:

=====================================  ==================================================
check in the export                    events
=====================================  ==================================================
sale (or funded hold), pending/settled ``sale``
held, not funded yet                   none yet (nothing is collected until it is funded)
not processed (125)                    ``sale``, declined (an exception: nothing collected)
voided                                 ``sale`` (voided: posts nothing) and ``void``
returned (R01 …)                       ``sale`` and ``return`` (reverses the receipt)
refund                                 ``refund`` of the original sale
=====================================  ==================================================

A sale's events come with it, so a return whose sale the inbox never saw still finds the
sale posted first (the planner waits for it), exactly as a card void does.

**Payment method.** An ACH receipt is posted with the ledger's ACH payment method: the
ledger connection's setting ``payment_methods.ach`` (``payment_method_id``, and
``bank_account_id``: the SBC bank account, or the Sage 500 GL cash account). Without the
entry the ledger kind's default is used (its connector's ``CardPostingRules``: SBC
``BANK_TRANSFER`` into the card receipts' bank account; Sage 500 the payment spec's ACH cash
account). An entry
whose method is left empty ("not used") stops ACH payments with an exception that names
the setting to fill in.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from ledgerlink.connectors import registry
from ledgerlink.connectors.base import CardPostingRules
from ledgerlink.domain.checks import ACH, CheckTransaction, event_id
from ledgerlink.payments.inbox import InboundEvent
from ledgerlink.payments.plans import Plan, ReceiptPlan
from ledgerlink.payments.problems import PaymentProblem

#: Where the mapping lives in the ledger connection's settings.
SETTING: Final = "payment_methods.ach"
_SAME_AS_SALE = ("SALE", "HOLD")


def events_of(check: CheckTransaction, connection_id: int | None) -> list[InboundEvent]:
    """The inbox events one exported check stands for (see the table above)."""
    kept = event_id(check.id)
    payload: dict[str, str] = {
        "transaction_id": kept,
        "amount": check.amount.format_plain(),
        "currency": check.amount.currency,
        "invoice_id": check.invoice_number,
        "customer_id": check.customer_id,
        "response": check.message,
        "masked_account": check.masked_account,
        "method": ACH,
    }
    if check.kind == "REFUND":
        if check.declined or check.voided:
            return []
        if check.original_id:
            payload["original_transaction_id"] = event_id(check.original_id)
        return [_event(kept, "refund", payload, connection_id)]
    if check.kind not in _SAME_AS_SALE or check.held:
        return []
    sale = dict(payload)
    if check.declined:
        sale["response_code"] = "102"
    if check.voided:
        sale["status"] = "voided"
    events = [_event(kept, "sale", sale, connection_id)]
    if check.voided:
        events.append(_event(kept, "void", {**payload, "status": "voided"}, connection_id))
    if check.returned:
        returned = {
            **payload,
            "return_code": check.return_code or "R??",
            "return_reason": check.return_reason,
        }
        events.append(_event(kept, "return", returned, connection_id))
    return events


def _event(
    kept: str, kind: str, payload: dict[str, str], connection_id: int | None
) -> InboundEvent:
    return InboundEvent(
        "poller",
        kept,
        kind,
        {name: value for name, value in payload.items() if value},
        verified=True,  # read from PayTrace's own export
        connection_id=connection_id,
    )


def with_ach_method(
    plan: Plan, ledger_kind: str, rules: CardPostingRules, settings: dict[str, Any]
) -> Plan:
    """``plan`` with the ledger's ACH payment method, when it is an ACH receipt.

    Raises a set-up :class:`PaymentProblem` naming the setting when the connection maps
    ACH to no payment method."""
    if plan.payment_method != ACH:
        return plan
    methods = settings.get("payment_methods") or {}
    entry = methods.get(ACH) if isinstance(methods, dict) else None
    if not isinstance(plan, ReceiptPlan):
        # a refund or reversal of an ACH receipt: in Sage 500 from the same cash account
        account = str((entry or {}).get("bank_account_id") or "").strip()
        if rules.account_is_gl_account and account:
            return replace(plan, gl_account=account)
        # elsewhere (SBC) the money goes back out of the ACH bank account
        return replace(plan, bank_account_id=account) if account else plan
    label = registry.label(ledger_kind)
    if entry is None:
        return replace(plan, payment_method_id=rules.ach_default_method)
    method_id = str((entry or {}).get("payment_method_id") or "").strip()
    account = str((entry or {}).get("bank_account_id") or "").strip()
    if not method_id:
        raise PaymentProblem(
            "configuration",
            f"ACH payments have no payment method in {label}: the setting "
            f"{SETTING} (Payment methods → ach) is empty",
            f"Choose the {label} payment method for ACH under Accounting Integration → "
            f"{label} → Payment methods (ach), save, then retry.",
            critical=True,
        )
    if rules.account_is_gl_account and account:
        # a Sage 500 receipt's method is its GL cash account
        return replace(plan, payment_method_id=method_id, gl_account=account)
    return replace(plan, payment_method_id=method_id, bank_account_id=account)


__all__ = ["SETTING", "events_of", "with_ach_method"]
