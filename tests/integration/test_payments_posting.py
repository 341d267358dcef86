"""Card payments become receipts in Sage 500, exactly once: sales, partial and over-
payments, declines, unknown invoices fixed from the queue, refunds, voids, chargebacks
and won disputes, all through the PayTrace and Sage 500 simulators."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ledgerlink.payments import resolutions
from ledgerlink.settings import Settings
from ledgerlink.store.mapping_repo import MappingRepository
from tests.support.payments import ME, PaymentsWorld, profiles, sage500_world


@pytest.fixture
def world(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path) as made:
        yield made


def _payer_and_invoice(world: PaymentsWorld, index: int = 0) -> tuple[str, dict]:  # type: ignore[type-arg]
    customer = profiles(world)[index]
    invoices = world.open_invoices(int(customer[1:]))
    assert invoices, f"{customer} has no open invoice"
    return customer, invoices[0]


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _act(world: PaymentsWorld, transaction_id: str, action: str, **kwargs: str) -> None:
    found = world.exception_for(transaction_id)
    assert found is not None
    with world.runtime.db.transaction() as session:
        resolutions.take_action(session, world.runtime.jobs, ME, found.id, action, **kwargs)


def test_a_sale_becomes_a_receipt_applied_to_its_invoice_once(world: PaymentsWorld) -> None:
    customer, invoice = _payer_and_invoice(world)
    sale = world.pay(customer, _money(invoice["Balance"]), invoice["TranID"])
    world.poll()
    world.poll()  # a second poll reads the same export: nothing new
    world.process()
    event = world.event(sale)
    assert event.status == "posted", event.message
    assert world.invoice(invoice["TranID"])["Balance"] == 0
    [posting] = world.postings()
    assert (posting.action, posting.invoice_number, posting.applied_minor) == (
        "receipt",
        invoice["TranID"],
        int(invoice["Balance"] * 100),
    )
    assert posting.mapping_version.startswith("paytrace_transaction_to_sage500_cash_receipt@")
    assert len(world.erp_payments()) == 1


def test_partial_and_over_payments(world: PaymentsWorld) -> None:
    customer, invoice = _payer_and_invoice(world)
    balance = Decimal(invoice["Balance"])
    world.pay(customer, _money(balance - Decimal("10.00")), invoice["TranID"])
    world.poll()
    world.process()
    assert Decimal(world.invoice(invoice["TranID"])["Balance"]) == Decimal("10.00")
    over = world.pay(customer, "25.00", invoice["TranID"])
    world.poll()
    world.process()
    assert world.event(over).status == "posted"
    assert world.invoice(invoice["TranID"])["Balance"] == 0
    [payment] = [p for p in world.erp_payments() if Decimal(p["TranAmt"]) == Decimal("25.00")]
    assert Decimal(payment["UnappliedAmt"]) == Decimal("15.00")  # on the customer's account


def test_an_overpayment_goes_to_the_queue_when_set_so_and_on_account_from_there(
    settings: Settings, tmp_path: Path
) -> None:
    with sage500_world(settings, tmp_path, paytrace_settings={"overpayment": "exception"}) as w:
        customer, invoice = _payer_and_invoice(w)
        over = w.pay(customer, _money(Decimal(invoice["Balance"]) + 5), invoice["TranID"])
        w.poll()
        w.process()
        found = w.exception_for(over)
        assert found is not None
        assert found.reason_code == "amount_mismatch"
        assert "more than" in found.reason
        assert w.invoice(invoice["TranID"])["Balance"] == invoice["Balance"]
        _act(w, over, "on_account")
        w.process()
        assert w.event(over).status == "posted"
        assert w.invoice(invoice["TranID"])["Balance"] == 0
        assert w.exception_for(over).status == "resolved"  # type: ignore[union-attr]


def test_a_decline_is_an_exception_and_posts_nothing(world: PaymentsWorld) -> None:
    customer, invoice = _payer_and_invoice(world)
    declined = world.paytrace(
        "/v1/transactions/sale/by_customer",
        {"customer_id": customer, "amount": "0.29", "invoice_id": invoice["TranID"]},
    )
    world.poll()
    world.process()
    found = world.exception_for(str(declined["transaction_id"]))
    assert found is not None
    assert found.reason_code == "declined"
    assert "declined" in found.reason
    assert found.fix
    assert world.erp_payments() == []


def test_an_unknown_invoice_waits_in_the_queue_until_applied_to_the_right_one(
    world: PaymentsWorld,
) -> None:
    customer, invoice = _payer_and_invoice(world)
    sale = world.pay(customer, "30.00", "9999999999-IN")
    world.poll()
    world.process()
    found = world.exception_for(sale)
    assert found is not None
    assert found.reason_code == "invoice_not_found"
    assert "9999999999-IN" in found.reason
    assert world.erp_payments() == []
    _act(world, sale, "apply_to_invoice", invoice_number=invoice["TranID"])
    world.process()
    assert world.event(sale).status == "posted"
    assert Decimal(world.invoice(invoice["TranID"])["Balance"]) == Decimal(
        invoice["Balance"]
    ) - Decimal("30.00")
    assert world.exception_for(sale).status == "resolved"  # type: ignore[union-attr]


def test_another_customers_invoice_is_a_mismatch(world: PaymentsWorld) -> None:
    payer = profiles(world)[0]
    _, invoice = _payer_and_invoice(world, 1)
    sale = world.pay(payer, "5.00", invoice["TranID"])
    world.poll()
    world.process()
    found = world.exception_for(sale)
    assert found is not None
    assert found.reason_code == "customer_mismatch"


def test_a_refund_reopens_the_invoice_and_a_void_reverses_the_receipt(
    world: PaymentsWorld,
) -> None:
    customer, invoice = _payer_and_invoice(world)
    balance = Decimal(invoice["Balance"])
    sale = world.pay(customer, _money(balance), invoice["TranID"])
    world.settle()
    refund = world.refund(sale, "20.00")
    world.poll()
    world.process()
    assert world.event(refund, "refund").status == "posted"
    assert Decimal(world.invoice(invoice["TranID"])["Balance"]) == Decimal("20.00")

    _, second = _payer_and_invoice(world)
    other = world.pay(customer, _money(Decimal(second["Balance"])), second["TranID"])
    world.poll()
    world.process()
    assert world.invoice(second["TranID"])["Balance"] == 0
    world.void(other)
    world.poll()
    world.process()
    assert world.event(other, "void").status == "posted"
    assert world.invoice(second["TranID"])["Balance"] == second["Balance"]
    actions = sorted(p.action for p in world.postings())
    assert actions == ["receipt", "receipt", "refund", "reversal"]


def test_a_void_before_posting_posts_nothing(world: PaymentsWorld) -> None:
    customer, invoice = _payer_and_invoice(world)
    sale = world.pay(customer, "12.00", invoice["TranID"])
    world.void(sale)
    world.poll()
    world.process()
    assert world.erp_payments() == []
    assert world.invoice(invoice["TranID"])["Balance"] == invoice["Balance"]


def test_a_chargeback_reverses_flags_the_dispute_and_a_won_dispute_posts_again(
    world: PaymentsWorld,
) -> None:
    from ledgerlink.payments import disputes

    customer, invoice = _payer_and_invoice(world)
    sale = world.pay(customer, _money(Decimal(invoice["Balance"])), invoice["TranID"])
    world.settle()
    world.poll()
    world.process()
    assert world.invoice(invoice["TranID"])["Balance"] == 0
    case = world.dispute(sale)

    def import_report() -> None:
        rows = disputes.parse_report(world.dispute_report(), "disputes.csv")
        with world.runtime.db.transaction() as session:
            result = disputes.import_report(session, rows, world.paytrace_id)
        assert result.problems == []

    import_report()
    import_report()  # the same report again changes nothing
    world.process()
    assert world.invoice(invoice["TranID"])["Balance"] == invoice["Balance"]
    assert _member_history_status(world, customer, invoice["TranID"]) == "in dispute"
    flagged = world.exception_for(sale, "chargeback")
    assert flagged is not None
    assert flagged.reason_code == "chargeback"
    assert "in dispute" in flagged.reason

    import httpx

    httpx.post(
        f"{world.paytrace_url}/_sandbox/disputes",
        json={"case_number": case["case_number"], "status": "won"},
    )
    import_report()
    world.process()
    assert world.invoice(invoice["TranID"])["Balance"] == 0
    assert world.exception_for(sale, "chargeback").status == "resolved"  # type: ignore[union-attr]
    assert sorted(p.action for p in world.postings()) == ["receipt", "receipt", "reversal"]


def _member_history_status(world: PaymentsWorld, customer: str, tran_id: str) -> str:
    """The invoice's status on the member's page after a transactions sync."""
    import asyncio
    from datetime import UTC, datetime

    from sqlalchemy import select

    from ledgerlink.connectors.factory import ledger_for
    from ledgerlink.store.member_models import MemberLinkRow, MemberRow
    from ledgerlink.store.models import Connection
    from ledgerlink.sync import runs, views

    number = "M" + customer[1:]
    with world.runtime.db.transaction() as session:
        member_id = session.scalars(select(MemberRow.id).where(MemberRow.number == number)).one()
        session.add(
            MemberLinkRow(
                member_id=member_id,
                connection_id=world.ledger_id,
                system="sage500",
                customer_id=str(int(customer[1:])),
                customer_number=customer,
                linked_at=datetime.now(UTC),
                linked_by="test",
            )
        )
        run_id = runs.start(session, None, ME, world.ledger_id, ["transactions"]).id
        connection = session.get(Connection, world.ledger_id)
        session.expunge(connection)

    async def sync() -> None:
        async with ledger_for(world.runtime, connection) as ledger:  # type: ignore[arg-type, attr-defined]
            await runs.execute(
                world.runtime.db, run_id, ledger, ME, mappings=MappingRepository(None)
            )

    asyncio.run(sync())
    with world.runtime.db.read() as session:
        history = views.member_ledger_view(session, member_id)["history"]
    found = [h for h in history if h["number"] == tran_id]
    assert len(found) == 1, (tran_id, history[:5])
    [row] = found
    return str(row["status"])
