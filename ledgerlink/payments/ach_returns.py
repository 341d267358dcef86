"""What finance is told when an ACH payment comes back (a *return*, R01 …).

A return reverses the receipt the sale posted (as a chargeback does for a card) and opens
an exception whose reason names the return code in words (:mod:`return_codes`). The money
never arrived, so the fitting actions are those of a chargeback: nothing to apply or put on
account; the payer is asked to pay another way, and the exception ignored with a note once
they have (see ``resolutions._FITTING["ach_return"]``).
"""

from __future__ import annotations

from ledgerlink.domain.money import Money
from ledgerlink.payments.facts import CardPayment
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.payments.return_codes import return_code

REASON_CODE = "ach_return"
FIX = (
    "Contact the payer and collect the payment another way (Charge a stored card, or a new "
    "ACH payment once the account is sorted out); then ignore this exception with a note of "
    "what was agreed."
)


def _what(transaction_id: str, amount: Money, invoice_number: str) -> str:
    check = transaction_id.removeprefix("ach-")
    return f"ACH payment {check} of {amount.format_plain()} {amount.currency}" + (
        f" for invoice {invoice_number}" if invoice_number else ""
    )


def returned_problem(
    transaction_id: str, amount: Money, invoice_number: str, code: str, reason: str
) -> PaymentProblem:
    """The exception after the receipt was reversed: the invoice is open again."""
    words = return_code(code, reason).words
    return PaymentProblem(
        REASON_CODE,
        f"Returned by the payer's bank, {words}. "
        f"{_what(transaction_id, amount, invoice_number)}: the receipt was reversed"
        + (f" and invoice {invoice_number} is open again" if invoice_number else ""),
        FIX,
    )


def unposted_return_problem(payment: CardPayment, why: str) -> PaymentProblem:
    """A return of a payment ledgerlink never posted (it was voided, or is still in the
    exceptions queue): nothing to reverse, but finance must know the money is not coming."""
    words = return_code(payment.return_code, payment.return_reason).words
    return PaymentProblem(
        REASON_CODE,
        f"Returned by the payer's bank, {words}. "
        f"{_what(payment.transaction_id, payment.amount, payment.invoice_number)}. {why}",
        FIX,
    )


__all__ = ["FIX", "REASON_CODE", "returned_problem", "unposted_return_problem"]
