"""A run after new rows arrived matches only what they touch (the engine's incremental
run) and stores exactly what a full run over the same rows stores, on both back-ends;
a stored row that changed since the previous run makes the run a full one."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from ledgerlink.identity.principal import cli_principal
from ledgerlink.recon import match_sets
from ledgerlink.recon.runs import default_matcher, run_scope
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.recon_models import (
    ReconBreak,
    ReconMatchSegment,
    ReconReceipt,
    ReconTransaction,
)
from tests.support.recon import AS_OF, seed_scope

ME = cli_principal()


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    rt = Runtime(settings)
    upgrade(rt.db)
    return rt


def _run(runtime: Runtime, scope_id: int, *, full: bool = False) -> tuple[dict[str, int], bool]:
    outcome = asyncio.run(
        run_scope(
            runtime,
            scope_id,
            ME,
            trigger="cli",
            matcher=default_matcher(),
            as_of=AS_OF,
            read=False,
            full=full,
        )
    )
    return outcome.counts, outcome.incremental


def _stored(runtime: Runtime, scope_id: int) -> dict[str, Any]:
    with runtime.db.read() as session:
        stored = match_sets.current(session, scope_id)
        matches = sorted(
            (
                m["match_id"],
                m["rule"],
                tuple(m["left_ids"]),
                tuple(m["right_ids"]),
                m["amount_minor"],
            )
            for m in stored.to_dicts()
        )
        breaks = sorted(
            (b.break_id, b.type, b.status, b.present, tuple(b.ids), b.amount_minor)
            for b in session.scalars(select(ReconBreak).where(ReconBreak.scope_id == scope_id))
        )
        match_ids = stored.get_column("match_id").to_list()
    return {"matches": matches, "breaks": breaks, "twice": len(match_ids) - len(set(match_ids))}


def _add_sale(
    runtime: Runtime, scope_id: int, txn: str, minor: int, receipted: bool, reversed_: bool = False
) -> None:
    with runtime.db.transaction() as session:
        session.add(
            ReconTransaction(
                scope_id=scope_id,
                txn_id=txn,
                kind="sale",
                status="approved",
                amount_minor=minor,
                currency="USD",
                created_on=date(2026, 11, 12),
                card_brand="visa",
            )
        )
        if receipted:
            session.add(
                ReconReceipt(
                    scope_id=scope_id,
                    receipt_id=f"R{txn}",
                    idempotency_key=f"paytrace:{txn}:sale",
                    txn_id=txn,
                    kind="receipt",
                    amount_minor=minor,
                    currency="USD",
                    posted_on=date(2026, 11, 12),
                    reversed=reversed_,
                    customer_id="C1",
                    reference=f"PT{txn}",
                )
            )


def test_new_rows_are_matched_incrementally_and_stored_as_a_full_run_stores_them(
    runtime: Runtime,
) -> None:
    scope_id = seed_scope(runtime.db)
    _, incremental = _run(runtime, scope_id, full=True)
    assert not incremental
    _add_sale(runtime, scope_id, "5003", 4000, receipted=True)
    _add_sale(runtime, scope_id, "5004", 1500, receipted=False)
    _add_sale(runtime, scope_id, "5005", 900, receipted=True, reversed_=True)  # out of the books
    counts, incremental = _run(runtime, scope_id)
    assert incremental
    after_incremental = _stored(runtime, scope_id)
    full_counts, incremental = _run(runtime, scope_id, full=True)
    assert not incremental
    after_full = _stored(runtime, scope_id)
    assert after_incremental == after_full
    assert after_full["twice"] == 0  # a match is stored once, whichever run found it
    assert counts["matches"] == full_counts["matches"]
    assert counts["open_breaks"] == full_counts["open_breaks"]
    assert any(b[0].startswith("missing_receipt") and "5004" in b[4] for b in after_full["breaks"])


def test_a_daily_run_stores_only_its_difference_and_reads_back_as_a_full_run(
    runtime: Runtime,
) -> None:
    scope_id = seed_scope(runtime.db)
    _add_sale(runtime, scope_id, "5003", 4000, receipted=True)
    first, _ = _run(runtime, scope_id, full=True)
    assert first["matches_rebased"] == first["matches"] > 0
    again, _ = _run(runtime, scope_id, full=True)
    assert again["new_breaks"] == again["cleared_breaks"] == 0
    before = _stored(runtime, scope_id)
    _add_sale(runtime, scope_id, "5006", 2500, receipted=True)
    daily, incremental = _run(runtime, scope_id)
    assert incremental
    assert (daily["matches_added"], daily["matches_removed"]) == (1, 0)
    assert daily["matches"] == again["matches"] + 1
    after = _stored(runtime, scope_id)
    assert set(before["matches"]) < set(after["matches"])
    _run(runtime, scope_id, full=True)
    assert _stored(runtime, scope_id) == after


def test_segments_are_compacted_into_a_base_after_many_daily_runs(runtime: Runtime) -> None:
    scope_id = seed_scope(runtime.db)
    _run(runtime, scope_id, full=True)
    rebased = []
    for n in range(match_sets.COMPACT_AFTER + 2):
        _add_sale(runtime, scope_id, f"6{n:03d}", 100 + n, receipted=True)
        counts, incremental = _run(runtime, scope_id)
        assert incremental
        rebased.append("matches_rebased" in counts)
    assert rebased.count(True) == 1
    with runtime.db.read() as session:
        segments = session.scalar(
            select(func.count())
            .select_from(ReconMatchSegment)
            .where(ReconMatchSegment.scope_id == scope_id)
        )
    assert segments is not None
    assert segments <= match_sets.COMPACT_AFTER
    compacted = _stored(runtime, scope_id)
    _run(runtime, scope_id, full=True)
    assert _stored(runtime, scope_id) == compacted


def _add_refund(runtime: Runtime, scope_id: int, txn: str, of: str, minor: int) -> None:
    with runtime.db.transaction() as session:
        session.add(
            ReconTransaction(
                scope_id=scope_id,
                txn_id=txn,
                kind="refund",
                status="approved",
                amount_minor=minor,
                currency="USD",
                created_on=date(2026, 11, 13),
                batch_number="1002",
                card_brand="visa",
                original_txn_id=of,
            )
        )


def test_a_refund_of_a_sale_whose_receipt_was_reversed_is_matched_incrementally(
    runtime: Runtime,
) -> None:
    """The reversed receipt, left out of the books while PayTrace kept the money, comes
    back as half of a reversal pair when the refund arrives; the daily run need not
    match everything again for it."""
    scope_id = seed_scope(runtime.db)
    _add_sale(runtime, scope_id, "5007", 3000, receipted=True, reversed_=True)
    _run(runtime, scope_id, full=True)
    _add_refund(runtime, scope_id, "5008", of="5007", minor=3000)
    _, incremental = _run(runtime, scope_id)
    assert incremental
    daily = _stored(runtime, scope_id)
    _run(runtime, scope_id, full=True)
    assert _stored(runtime, scope_id) == daily


def test_a_stored_row_changed_since_the_previous_run_makes_the_next_run_full(
    runtime: Runtime,
) -> None:
    scope_id = seed_scope(runtime.db)
    _run(runtime, scope_id, full=True)
    with runtime.db.transaction() as session:
        receipt = session.scalars(
            select(ReconReceipt).where(ReconReceipt.scope_id == scope_id)
        ).one()
        receipt.reversed = True  # SBC deleted it: marked without a new read stamp
    _add_sale(runtime, scope_id, "5003", 4000, receipted=True)
    _, incremental = _run(runtime, scope_id)
    assert not incremental
    again = _stored(runtime, scope_id)
    _run(runtime, scope_id, full=True)
    assert _stored(runtime, scope_id) == again
