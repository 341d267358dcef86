"""Posting a plan to the ledger, exactly once, and saying what became of it.

The plan carries its idempotency key (``paytrace:<transaction>:<kind>``), so posting the
same plan again — a retry after a crash between the ledger's answer and our record —
gets the first posting back (``replayed``) instead of a second one. The outcome returned
here is recorded with the event's new status in one transaction
(:func:`ledgerlink.payments.queue.finish`).
"""

from __future__ import annotations

from ledgerlink.connectors.base import PaymentLedger
from ledgerlink.connectors.errors import Rejected
from ledgerlink.domain.accounts import (
    Application,
    PostedReceipt,
    ReceiptRequest,
    ReceiptReversal,
    RefundRequest,
)
from ledgerlink.payments.ach_returns import returned_problem
from ledgerlink.payments.plans import DisputeWonPlan, Plan, ReceiptPlan, RefundPlan, ReversalPlan
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.payments.queue import Outcome, RecordedPosting


async def execute(plan: Plan, ledger: PaymentLedger, ledger_name: str) -> Outcome:
    """Post ``plan`` through ``ledger`` (called ``ledger_name`` in messages)."""
    applications = (Application(plan.invoice_id, plan.applied),) if plan.applied.minor else ()
    try:
        posted = await _post(plan, ledger, applications)
    except Rejected as exc:
        raise PaymentProblem(
            "rejected",
            f"{ledger_name} refused the {plan.action}: {exc.message}",
            "Correct what the ledger names (in the ledger or the mapping), then retry.",
        ) from None
    posting = RecordedPosting(
        ledger_connection_id=plan.ledger_connection_id,
        system=plan.system,
        action=plan.action,
        idempotency_key=plan.key,
        ledger_id=str(posted.id),
        transaction_id=plan.transaction_id,
        original_transaction_id=_original(plan),
        customer_id=plan.customer_id,
        invoice_id=plan.invoice_id,
        invoice_number=plan.invoice_number,
        amount_minor=plan.amount.minor,
        applied_minor=plan.applied.minor,
        currency=plan.amount.currency,
        mapping_version=plan.mapping_version,
        replayed=posted.replayed,
    )
    problem = None
    if isinstance(plan, ReversalPlan) and plan.return_code:
        problem = returned_problem(
            plan.transaction_id,
            plan.amount,
            plan.invoice_number,
            plan.return_code,
            plan.return_reason,
        )
    elif isinstance(plan, ReversalPlan) and plan.chargeback:
        problem = PaymentProblem(
            "chargeback",
            f"Chargeback on transaction {plan.transaction_id}: the receipt was reversed "
            + (
                f"and invoice {plan.invoice_number} is open again (in dispute)"
                if plan.invoice_number
                else "(in dispute)"
            ),
            "Answer the dispute in PayTrace. A won dispute posts the receipt again by "
            "itself; ignore this exception with the outcome if it is lost.",
        )
    message = describe(plan, ledger_name, posted.id)
    if plan.disagreement:
        message = f"{message} (PayTrace's record; {plan.disagreement})"
    return Outcome(
        "posted",
        message,
        postings=(posting,),
        reversed_posting_id=plan.receipt_posting_id if isinstance(plan, ReversalPlan) else None,
        problem=problem,
        resolves_dispute_of=(
            plan.resolves_dispute_of if isinstance(plan, DisputeWonPlan) else None
        ),
    )


async def _post(
    plan: Plan, ledger: PaymentLedger, applications: tuple[Application, ...]
) -> PostedReceipt:
    if isinstance(plan, ReceiptPlan):
        return await ledger.post_receipt(
            ReceiptRequest(
                idempotency_key=plan.key,
                customer_id=plan.customer_id,
                date=plan.on,
                amount=plan.amount,
                applications=applications,
                reference=plan.reference,
                gl_account=plan.gl_account,
                payment_method=plan.payment_method,
                payment_method_id=plan.payment_method_id,
                bank_account_id=plan.bank_account_id,
            )
        )
    undoing = RefundRequest(
        idempotency_key=plan.key,
        customer_id=plan.customer_id,
        date=plan.on,
        amount=plan.amount,
        applications=applications,
        reference=plan.reference,
        gl_account=plan.gl_account,
        chargeback=isinstance(plan, ReversalPlan) and plan.chargeback,
        bank_account_id=plan.bank_account_id,
    )
    if isinstance(plan, RefundPlan):
        return await ledger.post_refund(undoing)
    return await ledger.reverse_posted_receipt(ReceiptReversal(plan.receipt_ledger_id, undoing))


def _original(plan: Plan) -> str:
    if isinstance(plan, RefundPlan):
        return plan.original_transaction_id
    if isinstance(plan, ReversalPlan):
        return plan.transaction_id
    return ""


def describe(plan: Plan, ledger_name: str, ledger_id: str) -> str:
    """The event's message once posted, as users read it in the payments list."""
    amount, applied = plan.amount, plan.applied
    text = amount.format_plain() + " " + amount.currency
    if isinstance(plan, ReceiptPlan):
        message = f"Receipt {ledger_id} of {text} posted to {ledger_name}"
        if applied.minor:
            message += f", {applied.format_plain()} applied to invoice {plan.invoice_number}"
        over = amount - applied
        if over.minor:
            message += f", {over.format_plain()} on account"
        return message
    if isinstance(plan, RefundPlan):
        message = f"Refund {ledger_id} of {text} posted to {ledger_name}"
        if applied.minor:
            message += f"; invoice {plan.invoice_number} re-opened by {applied.format_plain()}"
        return message
    what = (
        f"ACH return {plan.return_code}"
        if plan.return_code
        else "Chargeback"
        if plan.chargeback
        else "Void"
    )
    return f"{what}: receipt for {text} reversed in {ledger_name}" + (
        f"; invoice {plan.invoice_number} is open again" if plan.invoice_number else ""
    )


__all__ = ["describe", "execute"]
