"""ACH payments (PayTrace checks) become receipts with the ledger's ACH payment method,
applied to their invoice exactly once; a return (R01 …) reverses the receipt, re-opens the
invoice and raises an exception naming the return code in words. Through the PayTrace,
Sage 500 and SBC simulators over real HTTP, on both back-ends."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ledgerlink.connectors.sage500.tables import StgCashRcpt
from ledgerlink.overview import payment_figures
from ledgerlink.payments import resolutions
from ledgerlink.settings import Settings
from ledgerlink.store.payment_models import PaymentEvent, PaymentPosting
from tests.support.ach import ACCOUNT, ach_sale, map_ach, only_bank_account, return_check
from tests.support.payments import ME, PaymentsWorld, profiles, sage500_world, sbc_world


@pytest.fixture
def erp(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path, people=4) as made:
        yield made


@pytest.fixture
def sbc(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    with sbc_world(settings, tmp_path, people=4) as made:
        yield made


def _open_invoice(world: PaymentsWorld) -> dict[str, Any]:
    for customer in profiles(world):
        invoices = world.open_invoices(int(customer[1:]))
        if invoices:
            return invoices[0]
    raise AssertionError("no customer with an open invoice")


def _staged(world: PaymentsWorld, reference: str) -> dict[str, Any]:
    assert world.erp is not None
    with world.erp.connect() as conn:
        row = conn.execute(
            select(StgCashRcpt).where(StgCashRcpt.c.ImportReference == reference)
        ).one()
    return dict(row._mapping)


def test_an_ach_payment_posts_with_the_ach_method_and_a_return_reverses_it_in_sage500(
    erp: PaymentsWorld,
) -> None:
    invoice = _open_invoice(erp)
    balance = Decimal(invoice["Balance"])
    sale = ach_sale(erp, f"{balance:.2f}", invoice["TranID"])
    erp.poll()
    erp.process()
    assert erp.event(sale).status == "posted", erp.event(sale).message
    assert erp.invoice(invoice["TranID"])["Balance"] == 0
    staged = _staged(erp, f"paytrace:{sale}:sale")
    assert staged["GLAcctNo"] == "1020-00"  # the ACH cash account, not the card one (1010-00)

    erp.settle()
    return_check(erp, sale, "R01")
    erp.poll()
    erp.process()
    returned = erp.event(sale, "return")
    assert returned.status == "posted", returned.message
    assert Decimal(erp.invoice(invoice["TranID"])["Balance"]) == balance  # open again
    exception = erp.exception_for(sale, "return")
    assert exception is not None
    assert exception.reason_code == "ach_return"
    assert "R01 Insufficient funds: the payer's account did not have enough money" in (
        exception.reason
    )
    assert resolutions.allowed_actions(exception.reason_code) == ("ignore",)
    with erp.runtime.db.read() as session:
        kept = json.dumps([e.payload for e in session.scalars(select(PaymentEvent))])
        dashboard = payment_figures(session)
    # the dashboard counts the payment as ACH, and the return as money that went back
    assert (dashboard.payments, dashboard.by_ach) == (1, 1)
    assert (dashboard.reversals, dashboard.reversals_posted) == (1, 1)
    assert ACCOUNT not in kept  # only the masked account (xx9012) is kept
    assert "xx" + ACCOUNT[-4:] in kept


def test_the_same_ach_payment_read_twice_posts_once(erp: PaymentsWorld) -> None:
    invoice = _open_invoice(erp)
    sale = ach_sale(erp, "10.00", invoice["TranID"])
    erp.poll()
    erp.poll()  # the same export again: the same events, not new ones
    erp.process()
    erp.poll()
    erp.process()
    assert erp.event(sale).deliveries >= 2
    assert [(p.action, p.transaction_id) for p in erp.postings()] == [("receipt", sale)]
    assert erp.staged_posted() == {f"paytrace:{sale}:sale": 1}


def test_an_unmapped_ach_method_is_an_exception_naming_the_setting(erp: PaymentsWorld) -> None:
    map_ach(erp, {"payment_method_id": ""})  # "not used" on the connection's form
    invoice = _open_invoice(erp)
    balance = erp.invoice(invoice["TranID"])["Balance"]
    sale = ach_sale(erp, "10.00", invoice["TranID"])
    erp.poll()
    erp.process()
    exception = erp.exception_for(sale)
    assert exception is not None
    assert exception.reason_code == "configuration"
    assert "payment_methods.ach" in exception.reason
    assert "Payment methods" in exception.fix
    assert erp.postings() == []
    assert erp.invoice(invoice["TranID"])["Balance"] == balance

    map_ach(erp, {"payment_method_id": "ACH", "bank_account_id": "1000-00"})
    with erp.runtime.db.transaction() as session:
        resolutions.take_action(session, erp.runtime.jobs, ME, exception.id, "retry")
    erp.process()
    assert erp.event(sale).status == "posted", erp.event(sale).message
    assert _staged(erp, f"paytrace:{sale}:sale")["GLAcctNo"] == "1000-00"

    erp.settle()
    return_check(erp, sale, "R01")
    erp.poll()
    erp.process()
    assert erp.event(sale, "return").status == "posted", erp.event(sale, "return").message
    assert _staged(erp, f"paytrace:{sale}:return")["GLAcctNo"] == "1000-00"  # same account


def _sbc_invoice(world: PaymentsWorld) -> Any:
    for customer in profiles(world):
        contact = world.linked_customer("M" + customer[1:])
        if contact and contact != "None":
            invoices = world.sbc_invoices(contact)
            if invoices:
                return invoices[0]
    raise AssertionError("no linked contact with an open SBC invoice")


def _sbc_payment_method(world: PaymentsWorld, payment_id: str) -> str:
    async def read() -> str:
        async with world.ledger() as ledger:
            body = await ledger._get(f"/contact_payments/{payment_id}")
            return str(body["payment_method"]["id"])

    return asyncio.run(read())


def test_an_ach_payment_is_an_sbc_bank_transfer_and_a_return_deletes_it(
    sbc: PaymentsWorld,
) -> None:
    invoice = _sbc_invoice(sbc)
    sale = ach_sale(sbc, invoice.outstanding.format_plain(), invoice.number)
    sbc.poll()
    sbc.process()
    assert sbc.event(sale).status == "posted", sbc.event(sale).message
    assert sbc.sbc_invoice(invoice.number).outstanding.is_zero
    with sbc.runtime.db.read() as session:
        receipt = session.scalars(
            select(PaymentPosting).where(PaymentPosting.transaction_id == sale)
        ).one()
    assert _sbc_payment_method(sbc, receipt.ledger_id) == "BANK_TRANSFER"

    sbc.settle()
    return_check(sbc, sale, "R02")
    sbc.poll()
    sbc.poll()
    sbc.process()
    assert sbc.event(sale, "return").status == "posted", sbc.event(sale, "return").message
    assert sbc.sbc_invoice(invoice.number).outstanding == invoice.outstanding
    exception = sbc.exception_for(sale, "return")
    assert exception is not None
    assert "R02 Account closed" in exception.reason
    reversals = [p for p in sbc.postings() if p.action == "reversal"]
    assert len(reversals) == 1


def test_charging_a_profile_that_holds_a_bank_account_pays_the_invoice_by_ach(
    erp: PaymentsWorld,
) -> None:
    from ledgerlink.payments import charges

    customer = next(c for c in profiles(erp) if erp.open_invoices(int(c[1:])))
    invoice = erp.open_invoices(int(customer[1:]))[0]
    only_bank_account(erp, customer)
    result = asyncio.run(
        charges.charge_invoice(
            erp.runtime,
            ME,
            invoice_number=invoice["TranID"],
            idempotency_key="ach-charge-0001",
            amount="12.00",
        )
    )
    assert result.status == "approved", result.message
    assert result.transaction_id is not None
    assert result.transaction_id.startswith("ach-")
    assert "ACH payment" in result.message
    erp.process()
    erp.poll()  # the checks export brings the same payment: nothing new
    erp.process()
    assert erp.event(result.transaction_id).status == "posted"
    [posting] = erp.postings()
    assert (posting.transaction_id, posting.applied_minor) == (result.transaction_id, 1200)
    assert _staged(erp, f"paytrace:{result.transaction_id}:sale")["GLAcctNo"] == "1020-00"
    assert Decimal(erp.invoice(invoice["TranID"])["Balance"]) == Decimal(invoice["Balance"]) - 12


def test_an_unmapped_ach_method_in_sbc_is_an_exception_and_the_mapping_chosen_is_used(
    sbc: PaymentsWorld,
) -> None:
    map_ach(sbc, {"payment_method_id": ""})
    invoice = _sbc_invoice(sbc)
    sale = ach_sale(sbc, "5.00", invoice.number)
    sbc.poll()
    sbc.process()
    exception = sbc.exception_for(sale)
    assert exception is not None
    assert exception.reason_code == "configuration"
    assert "payment_methods.ach" in exception.reason
    assert "Sage Business Cloud → Payment methods" in exception.fix
    assert sbc.postings() == []

    map_ach(sbc, {"payment_method_id": "CHECK"})
    with sbc.runtime.db.transaction() as session:
        resolutions.take_action(session, sbc.runtime.jobs, ME, exception.id, "retry")
    sbc.process()
    assert sbc.event(sale).status == "posted", sbc.event(sale).message
    [receipt] = sbc.postings()
    assert _sbc_payment_method(sbc, receipt.ledger_id) == "CHECK"


def test_an_ach_payment_voided_before_it_settled_is_reversed(erp: PaymentsWorld) -> None:
    invoice = _open_invoice(erp)
    balance = Decimal(invoice["Balance"])
    sale = ach_sale(erp, "20.00", invoice["TranID"])
    erp.poll()
    erp.process()
    assert Decimal(erp.invoice(invoice["TranID"])["Balance"]) == balance - 20
    voided = erp.paytrace("/v1/checks/manage/void", {"check_transaction_id": int(sale[4:])})
    assert voided["success"], voided
    erp.poll()
    erp.process()
    assert erp.event(sale, "void").status == "posted", erp.event(sale, "void").message
    assert Decimal(erp.invoice(invoice["TranID"])["Balance"]) == balance
    assert erp.exception_for(sale, "void") is None  # a void is no return: nothing to chase


def test_a_return_of_a_payment_never_posted_says_so_and_reverses_nothing(
    erp: PaymentsWorld,
) -> None:
    map_ach(erp, {"payment_method_id": ""})  # the sale stops in the exceptions queue
    invoice = _open_invoice(erp)
    balance = erp.invoice(invoice["TranID"])["Balance"]
    sale = ach_sale(erp, "10.00", invoice["TranID"])
    erp.poll()
    erp.process()
    assert erp.event(sale).status == "exception"
    erp.settle()
    return_check(erp, sale, "R10")
    erp.poll()
    erp.process()
    exception = erp.exception_for(sale, "return")
    assert exception is not None
    assert exception.reason_code == "ach_return"
    assert "R10 Not authorized" in exception.reason
    assert "never posted" in exception.reason
    assert erp.postings() == []
    assert erp.invoice(invoice["TranID"])["Balance"] == balance


def test_an_ach_refund_in_sbc_leaves_from_the_ach_bank_account(sbc: PaymentsWorld) -> None:
    async def bank_accounts() -> dict[str, str]:
        async with sbc.ledger() as ledger:
            body = await ledger._get("/bank_accounts")
            return {str(b["displayed_as"]): str(b["id"]) for b in body["$items"]}

    accounts = asyncio.run(bank_accounts())
    operating = next(i for name, i in accounts.items() if name.startswith("Operating"))
    map_ach(sbc, {"payment_method_id": "BANK_TRANSFER", "bank_account_id": operating})
    invoice = _sbc_invoice(sbc)
    sale = ach_sale(sbc, "10.00", invoice.number)
    sbc.poll()
    sbc.process()
    assert sbc.event(sale).status == "posted", sbc.event(sale).message
    sbc.settle()
    refunded = sbc.paytrace(
        "/v1/checks/refund/by_transaction",
        {"check_transaction_id": int(sale.removeprefix("ach-")), "amount": 4.00},
    )
    assert refunded.get("success"), refunded
    sbc.poll()
    sbc.process()
    refund = next(p for p in sbc.postings() if p.action == "refund")

    async def refund_account() -> str:
        async with sbc.ledger() as ledger:
            body = await ledger._get(f"/contact_payments/{refund.ledger_id}")
            return str(body["bank_account"]["id"])

    # the money goes back out of the account the ACH payment came into, not card clearing
    assert asyncio.run(refund_account()) == operating
