"""Reconciliation of PayTrace against SBC, read through the connectors from the
simulators: a missed sale is a missing receipt posted from its break exactly once as an
SBC customer receipt; the bank's OFX statement reconciles the batch and names the
unknown credit; a card payment keyed again by hand is a duplicate, reversed from its
break."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from ledgerlink.domain.accounts import ReceiptRequest
from ledgerlink.recon import resolutions
from ledgerlink.sandbox.statements import Anomalies
from ledgerlink.settings import Settings
from ledgerlink.store.recon_models import ReconReceipt
from tests.support.payments import PaymentsWorld, profiles, sbc_world
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
    with sbc_world(settings, tmp_path) as made:
        yield made


def _payers(world: PaymentsWorld) -> list[tuple[str, object]]:
    found = []
    for customer in profiles(world):
        contact = world.linked_customer("M" + customer[1:])
        if contact and contact != "None":
            invoices = world.sbc_invoices(contact)
            if invoices:
                found.append((customer, invoices[0]))
    return found


def test_a_missed_sale_is_posted_from_its_break_once_and_the_statement_reconciles(
    world: PaymentsWorld,
) -> None:
    (c1, inv1), (c2, inv2) = _payers(world)[:2]
    posted = world.pay(c1, inv1.outstanding.format_plain(), inv1.number)  # type: ignore[attr-defined]
    world.poll()
    world.process()
    missed = world.pay(c2, inv2.outstanding.format_plain(), inv2.number)  # type: ignore[attr-defined]
    world.settle()
    scope_id = scope_of(world)
    data = statement_of_deposits(world, "ofx", Anomalies(unknown_credits=(5000,)))
    assert import_file(world, scope_id, data, "bank.ofx").lines >= 1
    first = run(world, scope_id)
    assert first.error is None, first.error
    found = {b.break_id: b for b in breaks(world, scope_id)}
    assert found[f"missing_receipt:{missed}"].amount_minor == inv2.outstanding.minor  # type: ignore[attr-defined]
    assert f"missing_receipt:{posted}" not in found
    assert [b.amount_minor for b in found.values() if b.type == "unknown_credit"] == [5000]

    done = asyncio.run(
        resolutions.post_and_confirm(
            world.runtime, ME, scope_id, f"missing_receipt:{missed}", trigger="cli"
        )
    )
    assert "now holds it" in done.message, done.message
    assert world.sbc_invoice(inv2.number).outstanding.is_zero  # type: ignore[attr-defined]
    world.poll()
    world.process()
    run(world, scope_id)
    assert len(receipts_for(world, scope_id, missed)) == 1
    assert len([p for p in world.postings() if p.transaction_id == missed]) == 1
    assert f"missing_receipt:{missed}" not in {b.break_id for b in breaks(world, scope_id)}


def test_a_receipt_keyed_twice_is_a_duplicate_and_reversing_it_clears_the_break(
    world: PaymentsWorld,
) -> None:
    (c1, inv1), *_ = _payers(world)
    amount = inv1.outstanding  # type: ignore[attr-defined]
    sale = world.pay(c1, amount.format_plain(), inv1.number)  # type: ignore[attr-defined]
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
                    amount=amount,
                    reference=f"PT{sale}",
                )
            )
            return str(again.id)

    by_hand = asyncio.run(key_it_again())
    scope_id = scope_of(world)
    run(world, scope_id)
    duplicates = [b for b in breaks(world, scope_id) if b.type == "duplicate_receipt"]
    assert len(duplicates) == 1, [(b.break_id, b.detail) for b in breaks(world, scope_id)]
    extra = duplicates[0].ids[0]
    assert extra in {by_hand, posting.ledger_id}
    done = asyncio.run(
        resolutions.reverse_duplicate(
            world.runtime, ME, scope_id, duplicates[0].break_id, extra, note="keyed twice"
        )
    )
    assert extra in done.message
    run(world, scope_id)
    assert not [b for b in breaks(world, scope_id) if b.type == "duplicate_receipt"]
    with world.runtime.db.read() as session:
        kept = set(
            session.scalars(
                select(ReconReceipt.receipt_id).where(
                    ReconReceipt.receipt_id.in_([by_hand, posting.ledger_id]),
                    ReconReceipt.reversed.is_(False),
                )
            )
        )
    assert kept == {by_hand, posting.ledger_id} - {extra}
