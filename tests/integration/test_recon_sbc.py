"""Reconciliation of PayTrace against SBC, read through the connectors from the
simulators: a missed sale is a missing receipt posted from its break exactly once as an
SBC customer receipt; the bank's OFX statement reconciles the batch and names the
unknown credit; a card payment keyed again by hand is a duplicate, reversed from its
break."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ledgerlink.domain.accounts import ReceiptRequest
from ledgerlink.domain.money import Money
from ledgerlink.recon import resolutions
from ledgerlink.recon.views import summary
from ledgerlink.sandbox.statements import Anomalies
from ledgerlink.settings import Settings
from ledgerlink.store.recon_models import ReconBatch, ReconBreak, ReconReceipt, ReconScope
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
    before = {b.break_id for b in breaks(world, scope_id)}
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
    again = run(world, scope_id)
    assert not [b for b in breaks(world, scope_id) if b.type == "duplicate_receipt"]
    # the deleted duplicate is out of the books: nothing else appears in its place
    assert {b.break_id for b in breaks(world, scope_id)} == before - {duplicates[0].break_id}
    assert again.counts["new_breaks"] == 0
    assert run(world, scope_id, full=True).counts["new_breaks"] == 0
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


def test_only_card_receipts_are_reconciled_a_cheque_keyed_by_hand_is_no_break(
    world: PaymentsWorld,
) -> None:
    """The receipts side holds card money only: the sandbox's seeded cheque receipts and a
    bank transfer typed in by hand are not "in the ledger with no approved PayTrace
    transaction"; a receipt whose reference names a PayTrace transaction that does not
    exist still is."""
    (c1, inv1), *_ = _payers(world)
    sale = world.pay(c1, inv1.outstanding.format_plain(), inv1.number)  # type: ignore[attr-defined]
    world.poll()
    world.process()
    posting = next(p for p in world.postings() if p.transaction_id == sale)

    async def key_by_hand(reference: str, key: str) -> str:
        async with world.ledger() as ledger:
            made = await ledger.post_receipt(
                ReceiptRequest(
                    idempotency_key=key,
                    customer_id=posting.customer_id,
                    date=date.today(),
                    amount=Money.parse("42.00", "USD"),
                    reference=reference,
                )
            )
            return str(made.id)

    async def seeded() -> set[str]:
        async with world.ledger() as ledger:
            return {p.id async for p in ledger.payments() if not p.deleted}

    cheques = asyncio.run(seeded()) - {posting.ledger_id}
    transfer = asyncio.run(key_by_hand("Bank transfer 20261207", "by-hand-transfer"))
    unknown_card = asyncio.run(key_by_hand("PT99999901", "by-hand-card"))
    scope_id = scope_of(world)
    outcome = run(world, scope_id)
    assert outcome.error is None, outcome.error
    found = breaks(world, scope_id)
    named = {i for b in found for i in [*b.ids, *b.other_ids]}
    assert cheques, "the SBC sandbox seeds receipts typed in by hand"
    assert not (cheques | {transfer}) & named, [(b.break_id, b.detail) for b in found]
    orphans = [b.ids for b in found if b.type == "orphan_receipt"]
    assert orphans == [[unknown_card]]
    assert f"missing_receipt:{sale}" not in {b.break_id for b in found}
    with world.runtime.db.read() as session:
        read = set(session.scalars(select(ReconReceipt.receipt_id)))
    assert read == {posting.ledger_id, unknown_card}


def test_a_deposit_not_due_yet_is_in_transit_aged_zero_never_negative(
    world: PaymentsWorld,
) -> None:
    """A batch whose settlement date is ahead of the run's day (PayTrace's day is ahead of
    ours; the bank deposits a day later still) is in transit for 0 days, not "-1 d"."""
    (c1, inv1), *_ = _payers(world)
    world.pay(c1, inv1.outstanding.format_plain(), inv1.number)  # type: ignore[attr-defined]
    world.poll()
    world.process()
    world.settle()
    scope_id = scope_of(world)
    run(world, scope_id)
    with world.runtime.db.read() as session:
        settled, newest = session.execute(
            select(ReconBatch.settled_on, ReconBatch.batch_number).order_by(
                ReconBatch.settled_on.desc(), ReconBatch.batch_number.desc()
            )
        ).first()  # type: ignore[misc]
    run(world, scope_id, as_of=settled - timedelta(days=1), read=False)
    transit = {b.ids[0]: b for b in breaks(world, scope_id) if b.type == "deposit_in_transit"}
    assert newest in transit, [(b.break_id, b.detail) for b in breaks(world, scope_id)]
    assert transit[newest].age_days == 0
    assert "(0 days)" in transit[newest].detail, transit[newest].detail
    assert min(b.age_days for b in transit.values()) >= 0
    with world.runtime.db.read() as session:
        stored = session.scalar(
            select(func.min(ReconBreak.as_of_days)).where(ReconBreak.type == "deposit_in_transit")
        )
    assert stored == 0
    buckets = _transit_buckets(world, scope_id)
    assert sum(buckets.values()) == len(transit)
    assert buckets["0-2 days"] >= 1


def _transit_buckets(world: PaymentsWorld, scope_id: int) -> dict[str, int]:
    with world.runtime.db.read() as session:
        scope = session.get(ReconScope, scope_id)
        assert scope is not None
        found = summary(session, scope)
    return {name: count for name, count, _ in found.in_transit}
