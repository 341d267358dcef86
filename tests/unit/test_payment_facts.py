"""What a payment event is taken to say: pushes are checked against PayTrace's record,
dispute report rows become chargebacks (and won disputes), and amounts stay exact."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.domain.accounts import CardOutcome, CardTransaction, CardTransactionKind
from ledgerlink.domain.money import Money
from ledgerlink.payments import disputes
from ledgerlink.payments.facts import NotBorneOut, from_payload, from_transaction
from ledgerlink.payments.inbox import EventRefused
from ledgerlink.payments.problems import PaymentProblem

TODAY = dt.date(2026, 11, 30)


def _transaction(**changes: object) -> CardTransaction:
    values: dict[str, object] = {
        "id": "180000001",
        "kind": CardTransactionKind.SALE,
        "outcome": CardOutcome.APPROVED,
        "amount": Money(12000, "USD"),
        "invoice_number": "0000000007-IN",
        "customer_id": "C00001",
        "created_at": dt.datetime(2026, 11, 29, 15, 0, tzinfo=dt.UTC),
    }
    values.update(changes)
    return CardTransaction(**values)  # type: ignore[arg-type]


def _claimed(kind: str = "sale", amount: str = "120.00") -> object:
    payload = {"amount": amount, "invoice_id": "WRONG", "customer_id": "C00009"}
    return from_payload("180000001", kind, payload, TODAY, "USD")


def test_paytrace_wins_over_what_a_push_said() -> None:
    checked = from_transaction(_claimed(), _transaction()).payment  # type: ignore[arg-type]
    assert (checked.invoice_number, checked.paytrace_customer_id) == ("0000000007-IN", "C00001")
    assert checked.on == dt.date(2026, 11, 29)
    assert checked.amount == Money(12000, "USD")


def test_an_amount_the_push_got_wrong_is_paytraces_and_the_difference_is_noted() -> None:
    read_back = from_transaction(_claimed("sale", "1.00"), _transaction())  # type: ignore[arg-type]
    assert read_back.payment.amount == Money(12000, "USD")
    assert read_back.disagreements == (
        "the notification said 1.00 USD but PayTrace has 120.00 USD",
    )


@pytest.mark.parametrize(
    ("kind", "transaction", "says"),
    [
        ("refund", _transaction(), "is a refund"),
        ("void", _transaction(voided=False), "not voided"),
    ],
)
def test_a_push_paytrace_does_not_bear_out_is_refused(
    kind: str, transaction: CardTransaction, says: str
) -> None:
    with pytest.raises(NotBorneOut) as refused:
        from_transaction(_claimed(kind), transaction)  # type: ignore[arg-type]
    assert says in refused.value.reason


def test_a_sale_voided_later_is_still_the_sale_and_marked_voided() -> None:
    checked = from_transaction(  # type: ignore[arg-type]
        _claimed(), _transaction(kind=CardTransactionKind.VOID, voided=True)
    ).payment
    assert checked.kind == "sale"
    assert checked.voided


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2))
def test_amounts_are_exact_minor_units(amount: Decimal) -> None:
    payment = from_payload("1", "sale", {"amount": str(amount)}, TODAY, "USD")
    assert payment.amount.minor == int(amount * 100)
    assert payment.mapping_source()["amount"] == f"{amount:.2f}"


def test_a_bad_amount_names_what_is_wrong() -> None:
    with pytest.raises(PaymentProblem) as refused:
        from_payload("1", "sale", {"amount": "12,00"}, TODAY, "USD")
    assert "'12,00'" in refused.value.reason


def test_dispute_rows_become_chargebacks_and_won_cases_their_reversal_too() -> None:
    report = (
        b"case_number,transaction_id,dispute_amount,status,invoice_id,reason_code,reason\r\n"
        b"CB0000001,180000001,120.00,open,0000000007-IN,10.4,Fraud\r\n"
        b"CB0000002,180000002,5.00,won,0000000008-IN,13.1,Not received\r\n"
    )
    rows = disputes.parse_report(report, "disputes.csv")
    first, second = (disputes.events_of(row, 3) for row in rows)
    assert [(e.kind, e.dedup_key, e.verified) for e in first] == [
        ("chargeback", "180000001:chargeback", True)
    ]
    assert [e.kind for e in second] == ["chargeback", "dispute_won"]
    assert first[0].payload["response"] == "CB0000001 10.4 Fraud"


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"transaction_id": "x1", "dispute_amount": "1.00"}, "transaction_id"),
        ({"transaction_id": "1", "dispute_amount": "0"}, "dispute_amount"),
        ({"transaction_id": "1", "dispute_amount": "1.00", "status": "maybe"}, "status"),
    ],
)
def test_a_bad_dispute_row_names_its_field(row: dict[str, str], field: str) -> None:
    with pytest.raises(EventRefused) as refused:
        disputes.events_of(row, None)
    assert refused.value.field == field


def test_a_report_without_the_needed_columns_is_refused_whole() -> None:
    with pytest.raises(EventRefused) as refused:
        disputes.parse_report(b"case,amount\r\n1,2\r\n", "report.csv")
    assert "transaction_id, dispute_amount" in refused.value.message
