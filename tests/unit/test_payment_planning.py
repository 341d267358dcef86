"""Planning a card payment against an in-memory ledger: what would be posted, decided
without a database or HTTP. Expected values are worked out by hand from the invoice, the
payment and the shipped payment specs (Sage 500: GL 1010-00 for card sales and refunds,
1015-00 for chargebacks, comment "PayTrace <id> <approval>"; SBC: no GL account,
reference "PayTrace <id>")."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace

import pytest

from ledgerlink.domain.money import Money
from ledgerlink.payments.execution import execute
from ledgerlink.payments.facts import CardPayment
from ledgerlink.payments.planning import Override, Planner, PlanRequest, SaleNotInInbox
from ledgerlink.payments.plans import (
    DisputeWonPlan,
    Plan,
    ReceiptPlan,
    RefundPlan,
    ReversalPlan,
)
from ledgerlink.payments.problems import Deferred, PaymentProblem, Settled
from tests.support.memory_ledger import MemoryLedger, MemoryPayments

JAN_20 = dt.date(2026, 1, 20)


def usd(text: str) -> Money:
    return Money.parse(text, "USD")


def payment(
    transaction_id: str = "T100",
    kind: str = "sale",
    amount: str = "60.00",
    invoice: str = "INV-1",
    payer: str = "",
    *,
    on: dt.date = JAN_20,
    original: str = "",
    approval: str = "A1B2",
    **flags: bool,
) -> CardPayment:
    return CardPayment(
        transaction_id=transaction_id,
        kind=kind,
        amount=usd(amount),
        invoice_number=invoice,
        paytrace_customer_id=payer,
        on=on,
        approval_code=approval,
        original_transaction_id=original,
        **flags,
    )


def world(kind: str = "sage500", invoice_total: str = "100.00") -> MemoryPayments:
    """A ledger with customer ACME01 owing ``invoice_total`` on INV-1, and BETA02."""
    ledger = MemoryLedger(kind)
    acme = ledger.add_customer("ACME01")
    ledger.add_customer("BETA02")
    ledger.add_invoice("INV-1", acme, invoice_total)
    return MemoryPayments(ledger)


def plan(facts: MemoryPayments, paid: CardPayment, **request: object) -> Plan:
    return asyncio.run(Planner(facts).plan(PlanRequest(paid, **request)))  # type: ignore[arg-type]


def post(facts: MemoryPayments, paid: CardPayment, **request: object) -> Plan:
    """Plan, execute against the memory ledger, and record the outcome."""
    planned = plan(facts, paid, **request)
    outcome = asyncio.run(execute(planned, facts.ledger, "the ledger"))
    facts.record(planned, outcome)
    return planned


def problem(facts: MemoryPayments, paid: CardPayment, **request: object) -> PaymentProblem:
    with pytest.raises(PaymentProblem) as raised:
        plan(facts, paid, **request)
    return raised.value


# -- receipts ---------------------------------------------------------------------------------


def test_a_sale_for_an_invoice_is_a_receipt_applied_to_it() -> None:
    facts = world()

    planned = plan(facts, payment())

    assert planned == ReceiptPlan(
        ledger_connection_id=7,
        system="sage500",
        key="paytrace:T100:sale",
        transaction_id="T100",
        customer_id="cust-ACME01",
        invoice_id="inv-INV-1",
        invoice_number="INV-1",
        amount=usd("60.00"),
        applied=usd("60.00"),
        on=JAN_20,
        gl_account="1010-00",
        reference="PayTrace T100 A1B2",
        mapping_version="paytrace_transaction_to_sage500_cash_receipt@shipped",
    )


def test_on_sbc_the_reference_is_the_transaction_and_there_is_no_gl_account() -> None:
    planned = plan(world("sbc"), payment())

    assert (planned.system, planned.gl_account, planned.reference) == ("sbc", "", "PayTrace T100")
    assert planned.applied == usd("60.00")


def test_an_overpayment_is_applied_up_to_the_open_balance_and_the_rest_stays_on_account() -> None:
    facts = world(invoice_total="40.00")

    planned = plan(facts, payment(amount="60.00"))

    # 40.00 open on INV-1: 40.00 applied, 20.00 left on the customer's account.
    assert (planned.amount, planned.applied) == (usd("60.00"), usd("40.00"))


def test_an_overpayment_is_an_exception_when_the_gateway_says_so() -> None:
    facts = world(invoice_total="40.00")

    refused = problem(facts, payment(amount="60.00"), overpayment="exception")

    assert refused.code == "amount_mismatch"
    assert "60.00 is more than the 40.00 still open on invoice INV-1" in refused.reason
    accepted = plan(
        facts, payment(amount="60.00"), overpayment="exception", override=Override(accept_over=True)
    )
    assert accepted.applied == usd("40.00")


def test_a_payment_for_a_paid_invoice_is_an_exception_when_overpayments_are() -> None:
    facts = world()
    paid = facts.ledger.invoices["inv-INV-1"]
    facts.ledger.invoices[paid.id] = replace(paid, outstanding=usd("0.00"))

    assert problem(facts, payment(), overpayment="exception").code == "invoice_closed"
    # With the default policy it all goes on account.
    assert plan(facts, payment()).applied == usd("0.00")


def test_a_payer_linked_to_another_customer_than_the_invoices_is_a_mismatch() -> None:
    facts = world()
    facts.payers["C00077"] = "cust-BETA02"

    refused = problem(facts, payment(payer="C00077"))

    assert refused.code == "customer_mismatch"
    assert "(C00077, BETA02)" in refused.reason


def test_an_invoice_the_ledger_does_not_have_is_an_exception() -> None:
    refused = problem(world(), payment(invoice="INV-404"))

    assert (refused.code, refused.reason) == (
        "invoice_not_found",
        "Invoice INV-404 is not in Sage 500",
    )


def test_a_payment_in_another_currency_than_the_invoice_is_an_exception() -> None:
    facts = world()
    paid = CardPayment("T100", "sale", Money.parse("60.00", "CAD"), "INV-1", "", JAN_20)

    assert problem(facts, paid).code == "currency_mismatch"


def test_put_on_account_for_a_named_customer_applies_nothing() -> None:
    facts = world()

    planned = plan(
        facts,
        payment(invoice=""),
        override=Override(on_account=True, customer_number="BETA02"),
    )

    assert (planned.customer_id, planned.invoice_id, planned.applied) == (
        "cust-BETA02",
        "",
        usd("0.00"),
    )
    missing = problem(facts, payment(), override=Override(customer_number="NOPE99"))
    assert missing.code == "not_linked"


def test_a_payment_with_no_invoice_from_an_unlinked_payer_is_not_linked() -> None:
    refused = problem(world(), payment(invoice="", payer="C00099"))

    assert refused.code == "not_linked"
    assert "(PayTrace customer C00099) is not linked to a customer in Sage 500" in refused.reason


def test_a_payment_with_no_invoice_from_a_linked_payer_goes_on_their_account() -> None:
    facts = world()
    facts.payers["C00002"] = "cust-BETA02"

    planned = plan(facts, payment(invoice="", payer="C00002"))

    assert (planned.customer_id, planned.applied, planned.invoice_number) == (
        "cust-BETA02",
        usd("0.00"),
        "",
    )


def test_a_payment_dated_in_a_closed_period_is_an_exception() -> None:
    facts = world()
    facts.ledger.lockdown = dt.date(2026, 1, 31)

    closed = problem(facts, payment(on=dt.date(2026, 1, 31)))

    assert closed.code == "period_closed"
    assert "locked up to 2026-01-31" in closed.reason
    assert plan(facts, payment(on=dt.date(2026, 2, 1))).on == dt.date(2026, 2, 1)


def test_declined_voided_and_authorisations_post_nothing() -> None:
    facts = world()

    assert problem(facts, payment(declined=True)).code == "declined"
    with pytest.raises(Settled, match="Voided at PayTrace"):
        plan(facts, payment(voided=True))
    with pytest.raises(Settled, match="Voided at PayTrace"):
        plan(facts, payment(), void_received=True)
    with pytest.raises(Settled, match="authorisation only"):
        plan(facts, payment(kind="authorization"))


# -- refunds ------------------------------------------------------------------------------------


def test_partial_refunds_re_open_the_invoice_by_what_the_sale_applied_and_no_more() -> None:
    facts = world()
    post(facts, payment(amount="100.00"))  # INV-1 paid in full: 100.00 applied
    assert facts.ledger.outstanding("INV-1") == usd("0.00")

    first = post(facts, payment("R1", "refund", "30.00", original="T100"))
    second = post(facts, payment("R2", "refund", "80.00", original="T100"))

    assert isinstance(first, RefundPlan)
    assert isinstance(second, RefundPlan)
    # 30.00 of the 100.00 applied re-opened; then 80.00 refunded but only 70.00 is left.
    assert (first.applied, second.applied) == (usd("30.00"), usd("70.00"))
    assert (first.customer_id, first.invoice_id, first.invoice_number) == (
        "cust-ACME01",
        "inv-INV-1",
        "INV-1",
    )
    assert first.key == "paytrace:R1:refund"
    assert first.original_transaction_id == "T100"
    assert first.gl_account == "1010-00"
    assert first.reference == "PayTrace R1 A1B2"
    assert facts.ledger.outstanding("INV-1") == usd("100.00")
    third = plan(facts, payment("R3", "refund", "5.00", original="T100"))
    assert third.applied == usd("0.00")
    assert third.invoice_id == ""


def test_on_sbc_a_refund_re_opens_nothing() -> None:
    facts = world("sbc")
    post(facts, payment(amount="100.00"))

    refund = plan(facts, payment("R1", "refund", "30.00", original="T100"))

    # SBC refunds pay money back; the plan keeps the invoice number for the message.
    assert (refund.applied, refund.invoice_id, refund.invoice_number) == (
        usd("0.00"),
        "",
        "INV-1",
    )


def test_a_refund_for_no_earlier_sale_goes_to_the_linked_payer_or_is_not_linked() -> None:
    facts = world()

    assert problem(facts, payment("R1", "refund", "10.00", payer="C00002")).code == "not_linked"
    facts.payers["C00002"] = "cust-BETA02"
    refund = plan(facts, payment("R1", "refund", "10.00", payer="C00002"))
    assert (refund.customer_id, refund.applied) == ("cust-BETA02", usd("0.00"))


def test_a_refund_waits_for_its_sale_and_fetches_one_the_inbox_never_saw() -> None:
    facts = world()
    refund = payment("R1", "refund", "10.00", original="T100")

    with pytest.raises(SaleNotInInbox) as missing:
        plan(facts, refund)
    assert missing.value.sale_id == "T100"
    facts.events["T100:sale"] = "processing"
    with pytest.raises(Deferred, match="Waiting for sale T100"):
        plan(facts, refund)
    facts.events["T100:sale"] = "exception"
    assert problem(facts, refund).code == "rejected"
    facts.events["T100:sale"] = "ignored"
    with pytest.raises(Settled, match="Nothing was posted for sale T100"):
        plan(facts, refund)


# -- reversals ----------------------------------------------------------------------------------


def test_a_chargeback_reverses_the_receipt_less_what_refunds_re_opened() -> None:
    facts = world()
    post(facts, payment(amount="100.00"))
    post(facts, payment("R1", "refund", "30.00", original="T100"))

    reversal = plan(facts, payment(kind="chargeback", amount="100.00"))

    assert isinstance(reversal, ReversalPlan)
    receipt = facts.receipts["T100"][-1]
    assert reversal == ReversalPlan(
        ledger_connection_id=7,
        system="sage500",
        key="paytrace:T100:chargeback",
        transaction_id="T100",
        customer_id="cust-ACME01",
        invoice_id="inv-INV-1",
        invoice_number="INV-1",
        amount=usd("100.00"),  # the receipt's amount
        applied=usd("70.00"),  # 100.00 applied, 30.00 already re-opened by the refund
        on=JAN_20,
        gl_account="1015-00",
        reference="PayTrace T100 A1B2",
        mapping_version="paytrace_transaction_to_sage500_cash_receipt@shipped",
        receipt_posting_id=receipt.posting_id,
        receipt_ledger_id=receipt.ledger_id,
        chargeback=True,
    )


def test_a_void_reverses_the_receipt_and_the_invoice_is_open_again() -> None:
    for kind in ("sage500", "sbc"):
        facts = world(kind)
        post(facts, payment(amount="100.00"))

        void = post(facts, payment(kind="void", amount="100.00"))

        assert isinstance(void, ReversalPlan)
        assert not void.chargeback
        assert void.applied == usd("100.00")
        assert facts.ledger.outstanding("INV-1") == usd("100.00"), kind


def test_a_reversal_of_an_already_reversed_receipt_posts_nothing() -> None:
    facts = world()
    post(facts, payment(amount="100.00"))
    post(facts, payment(kind="void", amount="100.00"))

    with pytest.raises(Settled, match="already reversed"):
        plan(facts, payment(kind="chargeback", amount="100.00"))


def test_a_chargeback_for_a_sale_that_posted_nothing_is_an_exception_to_answer() -> None:
    facts = world()
    facts.events["T100:sale"] = "ignored"

    refused = problem(facts, payment(kind="chargeback", amount="100.00"))

    assert refused.code == "chargeback"
    with pytest.raises(Settled):
        plan(facts, payment(kind="void", amount="100.00"))


def test_a_reversal_in_a_closed_period_is_an_exception() -> None:
    facts = world()
    post(facts, payment(amount="100.00"))
    facts.ledger.lockdown = JAN_20

    assert problem(facts, payment(kind="void", amount="100.00")).code == "period_closed"


# -- won disputes -------------------------------------------------------------------------------


def test_a_won_dispute_posts_the_reversed_receipt_again() -> None:
    facts = world()
    post(facts, payment(amount="100.00"))
    post(facts, payment(kind="chargeback", amount="100.00"))
    assert facts.ledger.outstanding("INV-1") == usd("100.00")

    won = plan(facts, payment(kind="dispute_won", amount="1.00", on=dt.date(2026, 3, 2)))

    assert isinstance(won, DisputeWonPlan)
    # The receipt's amount (100.00), not the dispute's, applied to the re-opened invoice.
    assert (won.key, won.amount, won.applied, won.customer_id) == (
        "paytrace:T100:dispute_won",
        usd("100.00"),
        usd("100.00"),
        "cust-ACME01",
    )
    assert (won.resolves_dispute_of, won.on) == ("T100", dt.date(2026, 3, 2))


def test_a_won_dispute_waits_for_its_chargeback_and_needs_a_receipt() -> None:
    facts = world()
    won = payment(kind="dispute_won", amount="100.00")

    with pytest.raises(Settled, match="no receipt had been posted"):
        plan(facts, won)
    facts.events["T100:chargeback"] = "received"
    with pytest.raises(Deferred, match="chargeback to be reversed first"):
        plan(facts, won)


# -- execution against the same ledger ----------------------------------------------------------


def test_executing_a_plan_twice_posts_once() -> None:
    facts = world()
    planned = plan(facts, payment(amount="100.00"))

    first = asyncio.run(execute(planned, facts.ledger, "Sage 500"))
    again = asyncio.run(execute(planned, facts.ledger, "Sage 500"))

    assert [p.replayed for p in first.postings + again.postings] == [False, True]
    assert first.postings[0].ledger_id == again.postings[0].ledger_id
    assert len(facts.ledger.entries) == 1
    assert facts.ledger.outstanding("INV-1") == usd("0.00")
    assert (
        first.message
        == "Receipt pmt-1 of 100.00 USD posted to Sage 500, 100.00 applied to invoice INV-1"
    )
