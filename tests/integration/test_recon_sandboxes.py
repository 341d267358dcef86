"""Reconciliation end to end against the sandboxes, for both ledger kinds.

Real card sales go through the PayTrace simulator and are posted by the payments path to
the Sage 500 or SBC simulator; one sale is left unposted; the batch settles (with the
sandbox's per-brand fees); ``ledgerlink sandbox statement`` writes the bank's statement in
BAI2, CAMT.053 or OFX with an anomaly; the statement is imported and the scope run. The
breaks must be exactly: the unposted sale, the anomaly, and the sandbox's seeded history
(sales settled before ledgerlink was connected, never posted) — everything else matches,
the deposits to the cent, net of the expected fees (and of a chargeback, withheld from the
next batch). The missing receipt is then posted through the payments path, and the ledger
holds it once, whatever is tried again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ledgerlink.cli import app
from ledgerlink.recon import match_sets
from ledgerlink.recon.imports import import_statement
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.recon.resolutions import post_and_confirm, post_missing_receipt
from ledgerlink.recon.runs import default_matcher, run_scope
from ledgerlink.recon.scopes import ensure_default_scopes, get_scope, update_settings
from ledgerlink.settings import Settings
from ledgerlink.store.recon_models import ReconBatch, ReconBreak
from tests.support.payments import ME, PaymentsWorld, profiles, sage500_world, sbc_world
from tests.support.waiting import wait_until


def _deposits(world: PaymentsWorld) -> dict[str, dict[str, Any]]:
    body = httpx.get(f"{world.paytrace_url}/_sandbox/deposits", timeout=10).json()
    return {str(d["batch_number"]): d for d in body["deposits"]}


def _settled_ids(world: PaymentsWorld, batch: str) -> set[str]:
    """The approved sales and refunds PayTrace lists in ``batch``."""
    body = world.paytrace("/v1/batches/transaction_list", {"batch_number": int(batch)})
    return {
        str(t["transaction_id"])
        for t in body.get("transactions", [])
        if str(t.get("transaction_type")) in ("SALE", "REFUND")
    }


def _settle(world: PaymentsWorld) -> str:
    before = set(_deposits(world))
    world.settle()
    [batch] = set(_deposits(world)) - before
    return batch


def _statement(world: PaymentsWorld, tmp_path: Path, fmt: str, *anomaly: str) -> Path:
    out = tmp_path / f"statement.{fmt}"
    result = CliRunner().invoke(
        app,
        ["sandbox", "statement", "--format", fmt, "--out", str(out),
         "--url", world.paytrace_url, *anomaly],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _scope_id(world: PaymentsWorld) -> int:
    with world.runtime.db.transaction() as session:
        [scope] = ensure_default_scopes(session, actor="test")
        return scope.id


def _import(world: PaymentsWorld, scope_id: int, path: Path) -> None:
    with world.runtime.db.transaction() as session:
        result = import_statement(
            session, ME, get_scope(session, scope_id), path.read_bytes(), path.name
        )
        assert not result.duplicate, result


def _run(world: PaymentsWorld, scope_id: int) -> None:
    asyncio.run(run_scope(world.runtime, scope_id, ME, trigger="cli", matcher=default_matcher()))


def _open_breaks(world: PaymentsWorld, scope_id: int) -> dict[tuple[str, str], ReconBreak]:
    with world.runtime.db.read() as session:
        found = session.scalars(
            select(ReconBreak).where(ReconBreak.scope_id == scope_id, ReconBreak.status == "open")
        ).all()
        for row in found:
            session.expunge(row)
    return {(b.type, ",".join(b.ids)): b for b in found}


def _matched(world: PaymentsWorld, scope_id: int, side: str) -> set[str]:
    with world.runtime.db.read() as session:
        ids: set[str] = set()
        for match in match_sets.current(session, scope_id).to_dicts():
            if match["left_side"] == side:
                ids.update(match["left_ids"])
            if match["right_side"] == side:
                ids.update(match["right_ids"])
    return ids


def _batches(world: PaymentsWorld, scope_id: int) -> dict[str, ReconBatch]:
    with world.runtime.db.read() as session:
        rows = session.scalars(select(ReconBatch).where(ReconBatch.scope_id == scope_id)).all()
        for row in rows:
            session.expunge(row)
    return {b.batch_number: b for b in rows}


def _history_breaks(world: PaymentsWorld, history: list[str]) -> set[tuple[str, str]]:
    """The seeded history's sales and refunds: approved in PayTrace, never in the ledger."""
    return {("missing_receipt", t) for batch in history for t in _settled_ids(world, batch)}


def _expected_nets_agree(world: PaymentsWorld, scope_id: int) -> None:
    """Every batch's expected deposit (gross less the scope's expected fees and withheld
    chargebacks) is what the sandbox's processor deposited, to the cent."""
    batches = _batches(world, scope_id)
    deposits = _deposits(world)
    assert set(batches) == set(deposits)
    for number, deposit in deposits.items():
        batch = batches[number]
        assert (batch.gross_minor, batch.fees_minor, batch.net_minor) == (
            _minor(deposit["gross"]),
            _minor(deposit["fees"]),
            _minor(deposit["net"]),
        ), number


def _minor(text: str) -> int:
    units, _, cents = text.partition(".")
    return int(units) * 100 + int((cents + "00")[:2])


def _resolve_twice(world: PaymentsWorld, scope_id: int, break_id: str) -> str:
    done = asyncio.run(post_and_confirm(world.runtime, ME, scope_id, break_id, trigger="cli"))
    with pytest.raises(ReconRefused) as again:
        asyncio.run(post_missing_receipt(world.runtime, ME, scope_id, break_id))
    assert "already resolved" in again.value.message
    # and the payments path, polling the same sale again, does not post it twice
    world.poll()
    world.process()
    return done.message


def _receipts_for(world: PaymentsWorld, txn_id: str) -> list[Any]:
    """The ledger's receipts for PayTrace transaction ``txn_id``, read through its port."""

    async def read() -> list[Any]:
        async with world.ledger() as ledger:
            return [
                p
                async for p in ledger.payments()
                if p.kind == "receipt" and txn_id in p.reference and not p.deleted
            ]

    return asyncio.run(read())


# -- Sage 500, BAI2 -----------------------------------------------------------------------------


@pytest.fixture
def sage500(settings: Settings, tmp_path: Path) -> Iterator[PaymentsWorld]:
    with sage500_world(settings, tmp_path) as made:
        yield made


def test_sage500_with_a_bai2_statement_short_by_fees(
    sage500: PaymentsWorld, tmp_path: Path
) -> None:
    world = sage500
    history = sorted(_deposits(world))
    customers = profiles(world)
    posted = []
    for customer in customers[:2]:
        [invoice, *_] = world.open_invoices(int(customer[1:]))
        posted.append(world.pay(customer, "25.00", invoice["TranID"]))
    world.poll()
    world.process()
    [invoice, *_] = world.open_invoices(int(customers[2][1:]))
    unposted = world.pay(customers[2], "31.17", invoice["TranID"])
    batch = _settle(world)
    assert _settled_ids(world, batch) == {*posted, unposted}

    statement = _statement(world, tmp_path, "bai2", "--fee-difference", f"{batch}:1240")
    scope_id = _scope_id(world)
    _import(world, scope_id, statement)
    _run(world, scope_id)

    breaks = _open_breaks(world, scope_id)
    [mismatch] = [b for (kind, _), b in breaks.items() if kind == "deposit_mismatch"]
    assert set(breaks) == _history_breaks(world, history) | {
        ("missing_receipt", unposted),
        ("deposit_mismatch", mismatch.ids[0]),
    }
    assert mismatch.other_ids == [batch]
    assert (mismatch.expected_minor or 0) - (mismatch.actual_minor or 0) == 1240
    assert "fees were 12.40 USD more than the schedule" in mismatch.detail
    # everything else matched: the posted sales to their receipts, the history's deposits
    # to their batches net of the expected fees
    assert set(posted) <= _matched(world, scope_id, "transactions")
    assert set(history) <= _matched(world, scope_id, "batches")
    _expected_nets_agree(world, scope_id)

    missing = breaks[("missing_receipt", unposted)]
    message = _resolve_twice(world, scope_id, missing.break_id)
    assert "The ledger now holds it" in message
    assert len(_receipts_for(world, unposted)) == 1
    _run(world, scope_id)
    assert ("missing_receipt", unposted) not in _open_breaks(world, scope_id)

    # a merchant account without fees: every deposit is then short by the sandbox's fees
    with world.runtime.db.transaction() as session:
        with pytest.raises(ReconRefused) as refused:
            update_settings(
                session, scope_id, actor="test", fee_schedule={"visa": {"percent_bp": 1.8}}
            )
        assert refused.value.field == "fee_schedule.visa.percent_bp"
    free = {"percent_bp": 0, "fixed_minor": 0}
    with world.runtime.db.transaction() as session:
        brands = ("visa", "mastercard", "amex", "discover", "other")
        update_settings(session, scope_id, actor="test", fee_schedule=dict.fromkeys(brands, free))
    assert all(b.fees_minor == 0 for b in _batches(world, scope_id).values())
    _run(world, scope_id)
    short = {
        b.other_ids[0]: b
        for (kind, _), b in _open_breaks(world, scope_id).items()
        if kind == "deposit_mismatch"
    }
    assert set(short) == {*history, batch}
    fees = _minor(_deposits(world)[history[0]]["fees"])
    assert (
        f"fees were {fees // 100}.{fees % 100:02d} USD more than the schedule"
        in short[history[0]].detail
    )


# -- SBC, CAMT.053 then OFX -----------------------------------------------------------------------


@pytest.fixture
def sbc(settings: Settings, tmp_path: Path) -> Iterator[PaymentsWorld]:
    with sbc_world(settings, tmp_path) as made:
        yield made


def _payers_with_invoices(world: PaymentsWorld, count: int) -> list[tuple[str, Any]]:
    found = []
    for customer in profiles(world):
        contact = world.linked_customer("M" + customer[1:])
        if contact and contact != "None":
            invoices = world.sbc_invoices(contact)
            if invoices:
                found.append((customer, invoices[0]))
        if len(found) == count:
            return found
    raise AssertionError(f"fewer than {count} PayTrace customers with an open SBC invoice")


def _cheque_receipts(world: PaymentsWorld) -> set[str]:
    """The SBC sandbox's seeded receipts (cheques typed in by hand, not card payments)."""

    async def read() -> set[str]:
        async with world.ledger() as ledger:
            return {p.id async for p in ledger.payments() if p.kind == "receipt" and not p.deleted}

    return asyncio.run(read())


def _named(breaks: dict[tuple[str, str], ReconBreak]) -> set[str]:
    return {i for b in breaks.values() for i in [*b.ids, *b.other_ids]}


def test_sbc_with_camt053_and_ofx_statements(sbc: PaymentsWorld, tmp_path: Path) -> None:
    world = sbc
    history = sorted(_deposits(world))
    cheques = _cheque_receipts(world)
    (p1, i1), (p2, i2), (p3, i3), (p4, i4) = _payers_with_invoices(world, 4)
    posted = [world.pay(p, "20.00", i.number) for p, i in ((p1, i1), (p2, i2))]
    world.poll()
    world.process()
    unposted = world.pay(p3, "17.50", i3.number)
    first = _settle(world)

    # CAMT.053: the first batch's deposit is not on the statement yet (in transit)
    camt = _statement(world, tmp_path, "camt053", "--missing-deposit", first)
    scope_id = _scope_id(world)
    _import(world, scope_id, camt)
    _run(world, scope_id)
    breaks = _open_breaks(world, scope_id)
    # the seeded cheque receipts are not card money: no break names them
    assert set(breaks) == _history_breaks(world, history) | {
        ("missing_receipt", unposted),
        ("deposit_in_transit", first),
    }
    assert cheques
    assert not cheques & _named(breaks)
    assert set(posted) <= _matched(world, scope_id, "transactions")
    assert set(history) <= _matched(world, scope_id, "batches")
    _expected_nets_agree(world, scope_id)

    # the missing receipt, posted through the payments path: in SBC once
    missing = breaks[("missing_receipt", unposted)]
    assert "The ledger now holds it" in _resolve_twice(world, scope_id, missing.break_id)
    assert len(_receipts_for(world, unposted)) == 1

    # OFX, later: the first deposit arrived, a second batch settled, and a credit nobody
    # explains is on the statement
    later = world.pay(p4, "12.00", i4.number)
    world.poll()
    world.process()
    second = _settle(world)
    ofx = _statement(
        world, tmp_path, "ofx", *(f"--missing-deposit={b}" for b in history),
        "--unknown-credit", "125.00",
    )  # fmt: skip
    _import(world, scope_id, ofx)
    _run(world, scope_id)
    breaks = _open_breaks(world, scope_id)
    [unknown] = [b for (kind, _), b in breaks.items() if kind == "unknown_credit"]
    assert set(breaks) == _history_breaks(world, history) | {
        ("unknown_credit", unknown.ids[0]),
    }
    assert not cheques & _named(breaks)
    assert unknown.amount_minor == 12500
    assert {first, second} <= _matched(world, scope_id, "batches")
    assert {unposted, later} <= _matched(world, scope_id, "transactions")
    _expected_nets_agree(world, scope_id)
    assert len(_receipts_for(world, unposted)) == 1


# -- a chargeback withheld from the next deposit ---------------------------------------------------


def _next_second() -> None:
    """Wait for the clock's next whole second (PayTrace stamps batches to the second)."""
    start = int(time.time())
    wait_until(lambda: int(time.time()) > start, timeout=3, interval=0.05, what="the next second")


def test_a_chargeback_is_withheld_from_the_next_deposit(
    sage500: PaymentsWorld, tmp_path: Path
) -> None:
    from ledgerlink.payments import disputes

    world = sage500
    history = sorted(_deposits(world))
    customers = profiles(world)
    [invoice, *_] = world.open_invoices(int(customers[0][1:]))
    disputed = world.pay(customers[0], "40.00", invoice["TranID"])
    world.poll()
    world.process()
    first = _settle(world)
    _next_second()  # batch times are to the second: keep the dispute clear of both batches
    world.dispute(disputed)
    rows = disputes.parse_report(world.dispute_report(), "d.csv")
    with world.runtime.db.transaction() as session:
        disputes.import_report(session, rows, world.paytrace_id)
    world.process()
    [invoice, *_] = world.open_invoices(int(customers[1][1:]))
    sale = world.pay(customers[1], "60.00", invoice["TranID"])
    world.poll()
    world.process()
    _next_second()
    second = _settle(world)
    assert _deposits(world)[second]["chargebacks_withheld"] == "40.00"

    statement = _statement(world, tmp_path, "ofx")
    scope_id = _scope_id(world)
    _import(world, scope_id, statement)
    _run(world, scope_id)
    _expected_nets_agree(world, scope_id)
    assert _batches(world, scope_id)[second].chargebacks_withheld_minor == 4000
    assert {first, second, *history} <= _matched(world, scope_id, "batches")
    # the disputed sale and its reversal agree on both sides; only the history is open
    assert set(_open_breaks(world, scope_id)) == _history_breaks(world, history)
    assert {disputed, sale} <= _matched(world, scope_id, "transactions")
