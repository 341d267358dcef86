"""Reconciliation of PayTrace against Sage 500, read through the connectors from the
simulators: a sale the payments path never saw is a missing receipt; posting it from the
break puts it in the ERP exactly once; a bank statement of the simulator's deposits in
each format imports and reconciles its batches, its unknown credit a break; a polled
settlement batch makes a run due (the job that runs after each batch poll)."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest

from ledgerlink.domain.accounts import ReceiptRequest
from ledgerlink.domain.money import Money
from ledgerlink.recon import resolutions
from ledgerlink.recon.jobs import scopes_with_new_batches
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.sandbox.statements import Anomalies
from ledgerlink.settings import Settings
from tests.support.payments import PaymentsWorld, profiles, sage500_world
from tests.support.recon_sandbox import (
    ME,
    breaks,
    import_file,
    receipts_for,
    run,
    scope_of,
    statement_of_deposits,
)


@pytest.fixture
def world(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path) as made:
        yield made


def _payers(world: PaymentsWorld) -> list[tuple[str, str, str]]:
    """(PayTrace customer, an open invoice, its balance) for customers with one."""
    found = []
    for customer in profiles(world):
        invoices = world.open_invoices(int(customer[1:]))
        if invoices:
            found.append(
                (customer, str(invoices[0]["TranID"]).strip(), f"{invoices[0]['Balance']:.2f}")
            )
    return found


def _posted_in_erp(world: PaymentsWorld, txn_id: str) -> int:
    return sum(1 for row in world.erp_payments() if txn_id in str(row.get("TranCmnt") or ""))


def test_a_sale_the_payments_path_missed_is_posted_from_its_break_exactly_once(
    world: PaymentsWorld,
) -> None:
    (c1, inv1, amt1), (c2, inv2, amt2) = _payers(world)[:2]
    posted = world.pay(c1, amt1, inv1)
    world.poll()
    world.process()
    missed = world.pay(c2, amt2, inv2)  # approved, but never polled nor pushed
    world.settle()
    scope_id = scope_of(world)
    first = run(world, scope_id)
    assert first.error is None, first.error
    types = {b.break_id: b.type for b in breaks(world, scope_id)}
    assert types.get(f"missing_receipt:{missed}") == "missing_receipt"
    assert f"missing_receipt:{posted}" not in types
    assert len(receipts_for(world, scope_id, posted)) == 1

    done = asyncio.run(
        resolutions.post_and_confirm(
            world.runtime, ME, scope_id, f"missing_receipt:{missed}", trigger="cli"
        )
    )
    assert "now holds it" in done.message, done.message
    assert world.event(missed).status == "posted"
    assert len(receipts_for(world, scope_id, missed)) == 1
    assert world.invoice(inv2)["Balance"] == 0
    with pytest.raises(ReconRefused, match="already resolved"):
        asyncio.run(
            resolutions.post_missing_receipt(
                world.runtime, ME, scope_id, f"missing_receipt:{missed}"
            )
        )
    world.poll()  # the poller now sees the sale too: it is the same event, posted once
    world.process()
    again = run(world, scope_id)
    assert again.counts["new_breaks"] == 0
    assert len(receipts_for(world, scope_id, missed)) == 1
    assert sum(world.staged_posted().values()) == len(world.erp_payments())
    resolved = {b.break_id: b for b in breaks(world, scope_id, "resolved")}
    assert resolved[f"missing_receipt:{missed}"].resolution == "posted_receipt"


@pytest.mark.parametrize("fmt", ["bai2", "camt053", "ofx"])
def test_a_statement_of_the_deposits_reconciles_the_batches_and_names_the_unknown_credit(
    world: PaymentsWorld, fmt: str
) -> None:
    (c1, inv1, amt1), *_ = _payers(world)
    world.pay(c1, amt1, inv1)
    world.poll()
    world.process()
    world.settle()
    scope_id = scope_of(world)
    world.poll()  # the poller sees the new settlement batch: a run is due for the scope
    assert scope_id in scopes_with_new_batches(world.runtime.db)
    data = statement_of_deposits(world, fmt, Anomalies(unknown_credits=(12345,)))
    imported = import_file(world, scope_id, data, f"bank.{fmt}")
    assert imported.format == fmt
    assert not imported.duplicate
    assert import_file(world, scope_id, data, f"again.{fmt}").duplicate
    run(world, scope_id)
    assert scope_id not in scopes_with_new_batches(world.runtime.db)
    found = breaks(world, scope_id)
    unknown = [b for b in found if b.type == "unknown_credit"]
    assert [b.amount_minor for b in unknown] == [12345]
    assert not [b for b in found if b.type == "deposit_in_transit"]


def test_a_receipt_keyed_twice_is_reversed_from_its_break_and_the_rerun_is_clean(
    world: PaymentsWorld,
) -> None:
    """Sage 500 keeps a reversed receipt and posts an undoing entry (a refund of the same
    amount) through the ERP's import: after the rerun the duplicate's break is cleared,
    the undoing entry is no new break, and nothing else appears."""
    (c1, inv1, amt1), *_ = _payers(world)
    sale = world.pay(c1, amt1, inv1)
    world.poll()
    world.process()
    posting = next(p for p in world.postings() if p.transaction_id == sale)

    async def key_it_again() -> str:  # a bookkeeper enters the same card payment by hand
        async with world.ledger() as ledger:
            again = await ledger.post_receipt(
                ReceiptRequest(
                    idempotency_key=f"by-hand-{sale}",
                    customer_id=posting.customer_id,
                    date=date.today(),
                    amount=Money.parse(amt1, "USD"),
                    reference=f"PT{sale}",
                )
            )
            return str(again.id)

    by_hand = asyncio.run(key_it_again())
    scope_id = scope_of(world)
    first = run(world, scope_id)
    assert first.error is None, first.error
    before = {b.break_id for b in breaks(world, scope_id)}
    duplicates = [b for b in breaks(world, scope_id) if b.type == "duplicate_receipt"]
    assert len(duplicates) == 1, [(b.break_id, b.detail) for b in breaks(world, scope_id)]
    extra = duplicates[0].ids[0]
    assert extra in {by_hand, posting.ledger_id}
    payments_before = len(world.erp_payments())
    done = asyncio.run(
        resolutions.reverse_duplicate(
            world.runtime, ME, scope_id, duplicates[0].break_id, extra, note="keyed twice"
        )
    )
    assert extra in done.message
    assert len(world.erp_payments()) == payments_before + 1  # the undoing entry, once

    again = run(world, scope_id, full=True)
    assert again.error is None, again.error
    after = {b.break_id: b for b in breaks(world, scope_id)}
    assert set(after) == before - {duplicates[0].break_id}, [
        (b.break_id, b.detail) for b in after.values()
    ]
    assert again.counts["new_breaks"] == 0
    assert again.counts["reopened_breaks"] == 0
    resolved = {b.break_id: b for b in breaks(world, scope_id, "resolved")}
    assert resolved[duplicates[0].break_id].resolution == "reversed_duplicate"
    assert run(world, scope_id).counts["new_breaks"] == 0  # and an incremental rerun too
