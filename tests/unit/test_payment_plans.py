"""Checkpointed plans: a plan written on an event before the upgrade (a plain dict, as
``posting.py`` stored it) is read back as the same typed plan and written back unchanged,
so an in-flight posting resumes with exactly what it planned."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.domain.money import Money
from ledgerlink.payments.plans import (
    DisputeWonPlan,
    ReceiptPlan,
    RefundPlan,
    ReversalPlan,
    UnreadablePlan,
    plan_from_json,
)

#: Plans in the shape the pre-typed code checkpointed (``payload["plan"]``), key for key.
STORED_RECEIPT: dict[str, Any] = {
    "action": "receipt",
    "ledger_connection_id": 2,
    "system": "sage500",
    "key": "paytrace:T100:sale",
    "transaction_id": "T100",
    "original_transaction_id": "",
    "customer_id": "17",
    "invoice_id": "1042",
    "invoice_number": "INV-1",
    "amount_minor": 6000,
    "apply_minor": 4000,
    "currency": "USD",
    "date": "2026-01-20",
    "gl_account": "1010-00",
    "reference": "PayTrace T100 A1B2",
    "mapping_version": "paytrace_transaction_to_sage500_cash_receipt@v3",
}
STORED_REFUND: dict[str, Any] = {
    **STORED_RECEIPT,
    "action": "refund",
    "key": "paytrace:R1:refund",
    "transaction_id": "R1",
    "original_transaction_id": "T100",
    "amount_minor": 1500,
    "apply_minor": 1500,
    "reference": "PayTrace R1",
}
STORED_REVERSAL: dict[str, Any] = {
    **STORED_RECEIPT,
    "action": "reversal",
    "system": "sbc",
    "key": "paytrace:T100:chargeback",
    "original_transaction_id": "T100",
    "amount_minor": 6000,
    "apply_minor": 2500,
    "gl_account": "",
    "receipt_posting_id": 55,
    "receipt_ledger_id": "a9f3c2",
    "chargeback": True,
}
STORED_DISPUTE_WON: dict[str, Any] = {
    **STORED_RECEIPT,
    "key": "paytrace:T100:dispute_won",
    "resolves_dispute_of": "T100",
    "disagreement": "amount: the webhook said 61.00",
}


def test_a_stored_receipt_plan_reads_as_a_receipt_plan() -> None:
    plan = plan_from_json(STORED_RECEIPT)

    assert plan == ReceiptPlan(
        ledger_connection_id=2,
        system="sage500",
        key="paytrace:T100:sale",
        transaction_id="T100",
        customer_id="17",
        invoice_id="1042",
        invoice_number="INV-1",
        amount=Money(6000, "USD"),
        applied=Money(4000, "USD"),
        on=dt.date(2026, 1, 20),
        gl_account="1010-00",
        reference="PayTrace T100 A1B2",
        mapping_version="paytrace_transaction_to_sage500_cash_receipt@v3",
    )


def test_a_stored_refund_and_reversal_keep_what_they_undo() -> None:
    refund = plan_from_json(STORED_REFUND)
    reversal = plan_from_json(STORED_REVERSAL)

    assert isinstance(refund, RefundPlan)
    assert (refund.original_transaction_id, refund.applied) == ("T100", Money(1500, "USD"))
    assert isinstance(reversal, ReversalPlan)
    assert (reversal.receipt_posting_id, reversal.receipt_ledger_id) == (55, "a9f3c2")
    assert reversal.chargeback
    assert reversal.applied == Money(2500, "USD")


def test_a_stored_won_dispute_keeps_the_dispute_and_the_disagreement() -> None:
    plan = plan_from_json(STORED_DISPUTE_WON)

    assert isinstance(plan, DisputeWonPlan)
    assert plan.resolves_dispute_of == "T100"
    assert plan.disagreement == "amount: the webhook said 61.00"


@pytest.mark.parametrize(
    "stored", [STORED_RECEIPT, STORED_REFUND, STORED_REVERSAL, STORED_DISPUTE_WON]
)
def test_a_stored_plan_is_written_back_exactly_as_it_was(stored: dict[str, Any]) -> None:
    assert plan_from_json(stored).to_json() == stored


def test_a_plan_of_an_unknown_action_is_refused_by_name() -> None:
    with pytest.raises(UnreadablePlan, match="'transfer'"):
        plan_from_json({**STORED_RECEIPT, "action": "transfer"})


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_common = {
    "ledger_connection_id": st.integers(1, 2**63 - 1),
    "system": st.sampled_from(["sbc", "sage500"]),
    "key": _text,
    "transaction_id": _text,
    "customer_id": _text,
    "invoice_id": _text,
    "invoice_number": _text,
    "on": st.dates(),
    "gl_account": _text,
    "reference": _text,
    "mapping_version": _text,
    "disagreement": _text,
}


@st.composite
def _plans(draw: st.DrawFn) -> Any:
    currency = draw(st.sampled_from(["USD", "EUR", "JPY", "BHD"]))
    fields = {name: draw(strategy) for name, strategy in _common.items()}
    fields["amount"] = Money(draw(st.integers(0, 10**12)), currency)
    fields["applied"] = Money(draw(st.integers(0, 10**12)), currency)
    kind = draw(st.sampled_from([ReceiptPlan, DisputeWonPlan, RefundPlan, ReversalPlan]))
    if kind is DisputeWonPlan:
        fields["resolves_dispute_of"] = draw(_text.filter(bool))
    elif kind is RefundPlan:
        fields["original_transaction_id"] = draw(_text)
    elif kind is ReversalPlan:
        fields["receipt_posting_id"] = draw(st.integers(1, 2**63 - 1))
        fields["receipt_ledger_id"] = draw(_text)
        fields["chargeback"] = draw(st.booleans())
    return kind(**fields)


@given(_plans())
def test_any_plan_reads_back_from_its_json_unchanged(plan: Any) -> None:
    assert plan_from_json(plan.to_json()) == plan
