"""Card payments become SBC customer receipts allocated to the invoice, exactly once;
refunds are customer refunds; a chargeback deletes the receipt, which re-opens the
invoice. Through the PayTrace and SBC simulators over real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ledgerlink.domain.accounts import LedgerPayment
from ledgerlink.settings import Settings
from tests.support.payments import PaymentsWorld, profiles, sbc_world


@pytest.fixture
def world(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    with sbc_world(settings, tmp_path) as made:
        yield made


def _payer_with_invoice(world: PaymentsWorld) -> tuple[str, object]:
    for customer in profiles(world):
        contact = world.linked_customer("M" + customer[1:])
        if contact and contact != "None":
            invoices = world.sbc_invoices(contact)
            if invoices:
                return customer, invoices[0]
    raise AssertionError("no PayTrace customer with an open SBC invoice")


def test_a_sale_is_a_receipt_allocated_to_the_invoice_and_a_chargeback_reopens_it(
    world: PaymentsWorld,
) -> None:
    from ledgerlink.payments import disputes

    customer, invoice = _payer_with_invoice(world)
    outstanding = invoice.outstanding  # type: ignore[attr-defined]
    sale = world.pay(customer, outstanding.format_plain(), invoice.number)  # type: ignore[attr-defined]
    world.settle()
    world.poll()
    world.process()
    assert world.event(sale).status == "posted", world.event(sale).message
    paid = world.sbc_invoice(invoice.number)  # type: ignore[attr-defined]
    assert paid.outstanding.is_zero
    assert paid.status.value == "paid"

    world.dispute(sale)
    rows = disputes.parse_report(world.dispute_report(), "d.csv")
    with world.runtime.db.transaction() as session:
        disputes.import_report(session, rows, world.paytrace_id)
    world.process()
    reopened = world.sbc_invoice(invoice.number)  # type: ignore[attr-defined]
    assert reopened.outstanding == outstanding
    flagged = world.exception_for(sale, "chargeback")
    assert flagged is not None
    assert flagged.status == "open"


def test_a_refund_is_a_customer_refund(world: PaymentsWorld) -> None:
    customer, invoice = _payer_with_invoice(world)
    sale = world.pay(customer, "10.00", invoice.number)  # type: ignore[attr-defined]
    world.settle()
    refund = world.refund(sale, "4.00")
    world.poll()
    world.process()
    assert world.event(refund, "refund").status == "posted", world.event(refund, "refund").message

    async def payments() -> list[LedgerPayment]:
        async with world.ledger() as ledger:
            return [p async for p in ledger.payments()]

    kinds = sorted(
        (p.kind, p.amount.format_plain())
        for p in asyncio.run(payments())
        if p.reference.startswith("PayTrace")
    )
    assert kinds == [("receipt", "10.00"), ("refund", "4.00")]
