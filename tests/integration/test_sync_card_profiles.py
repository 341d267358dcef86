"""Sage 500 customers ↔ PayTrace customer profiles as a sync data set: a change on either
side reaches the other, a change on both is a conflict the ledger wins, a plan writes
nothing, an unchanged pair costs no write, and card data is never part of it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from ledgerlink.connectors.factory import gateway_for, ledger_for
from ledgerlink.connectors.sage500.tables import tarCustomer, tciContact
from ledgerlink.jobs.registry import JobInterrupted
from ledgerlink.mapping.loader import packaged_text
from ledgerlink.settings import Settings
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import SyncRecord, SyncRun
from ledgerlink.sync import runs
from tests.support.payments import ME, PaymentsWorld, profiles, sage500_world, sbc_world


@pytest.fixture
def world(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path) as made:
        yield made


def _sync(world: PaymentsWorld, *, dry_run: bool = False) -> tuple[SyncRun, list[SyncRecord]]:
    runtime = world.runtime
    with runtime.db.transaction() as session:
        run_id = runs.start(
            session, None, ME, world.ledger_id, ["card_profiles"], dry_run=dry_run
        ).id
        connection = session.get(Connection, world.ledger_id)
        session.expunge(connection)

    async def go() -> SyncRun:
        async with ledger_for(runtime, connection) as ledger:  # type: ignore[arg-type, attr-defined]
            return await runs.execute(
                runtime.db,
                run_id,
                ledger,
                ME,
                open_gateway=lambda c: gateway_for(runtime, c),
                mappings=MappingRepository(None),
            )

    run = asyncio.run(go())
    with runtime.db.read() as session:
        records = list(session.scalars(select(SyncRecord).where(SyncRecord.run_id == run_id)))
        for record in records:
            session.expunge(record)
    return run, records


def _profile(world: PaymentsWorld, customer_id: str) -> dict[str, Any]:
    [found] = world.paytrace("/v1/customer/export", {"customer_id": customer_id})["customers"]
    return dict(found)


def _erp_contact(world: PaymentsWorld, cust_id: str) -> dict[str, Any]:
    assert world.erp is not None
    with world.erp.connect() as conn:
        row = conn.execute(
            select(tciContact)
            .join(tarCustomer, tarCustomer.c.PrimaryCntctKey == tciContact.c.CntctKey)
            .where(tarCustomer.c.CustID == cust_id)
        ).one()
    return dict(row._mapping)


def test_profiles_and_customers_agree_both_ways_and_conflicts_go_to_the_ledger(
    world: PaymentsWorld,
) -> None:
    first, _ = _sync(world)
    assert first.status == "finished", first.counts
    assert first.total == len(profiles(world))
    again, records = _sync(world)
    assert records == []
    assert again.counts.get("profiles_unchanged") == first.total

    one, two = profiles(world)[:2]
    world.paytrace(
        "/v1/customer/update", {"customer_id": one, "email": "new.card.email@example.org"}
    )
    assert world.erp is not None
    with world.erp.begin() as conn:
        key = conn.scalar(select(tarCustomer.c.PrimaryCntctKey).where(tarCustomer.c.CustID == two))
        conn.execute(
            update(tciContact).where(tciContact.c.CntctKey == key).values(Phone="+15035550142")
        )
    plan, planned = _sync(world, dry_run=True)
    assert plan.status == "planned"
    assert sorted((r.record_key, r.direction, r.status) for r in planned) == [
        (one, "to_ledger", "planned"),
        (two, "to_paytrace", "planned"),
    ]
    assert _erp_contact(world, one)["EMailAddr"] != "new.card.email@example.org"

    _, done = _sync(world)
    assert {r.record_key: r.status for r in done} == {one: "done", two: "done"}
    assert _erp_contact(world, one)["EMailAddr"] == "new.card.email@example.org"
    assert _profile(world, two)["phone"] == "+15035550142"
    assert "credit_card" not in done[0].changes

    world.paytrace("/v1/customer/update", {"customer_id": one, "email": "card.side@example.org"})
    contact_key = _erp_contact(world, one)["CntctKey"]
    with world.erp.begin() as conn:
        conn.execute(
            update(tciContact)
            .where(tciContact.c.CntctKey == contact_key)
            .values(EMailAddr="erp.side@example.org")
        )
    _, [conflict] = _sync(world)
    assert conflict.action == "conflict"
    assert conflict.changes["_conflicts"] == [
        {
            "field": "email",
            "paytrace": "card.side@example.org",
            "ledger": "erp.side@example.org",
            "winner": "ledger",
        }
    ]
    assert _profile(world, one)["email"] == "erp.side@example.org"


def test_profiles_are_written_the_way_the_ledger_to_paytrace_spec_says(
    world: PaymentsWorld,
) -> None:
    """Finance edits the Sage 500 → PayTrace spec (billing names in capitals): the next
    profile written takes that form and the run records the version; the capitals are not
    taken for a change made in PayTrace, so nothing flows back and later runs are quiet;
    a real PayTrace change still reaches the ledger."""
    first, _ = _sync(world)
    assert first.mapping_versions["sage500_customer_to_paytrace_customer"].startswith(
        "sage500_customer_to_paytrace_customer@package:"
    )
    assert "paytrace_customer_to_sage500_customer" in first.mapping_versions
    name = "sage500_customer_to_paytrace_customer"
    shipped = packaged_text(name)
    assert shipped is not None
    rule = "billing_address.name: left(clean(source.CustName), 50)"
    assert rule in shipped
    edited = shipped.replace(rule, "billing_address.name: upper(left(clean(source.CustName), 50))")
    with world.runtime.db.transaction() as session:
        MappingRepository(None).save(session, ME, name, edited, "billing names in capitals")

    one = profiles(world)[0]
    assert world.erp is not None
    key = _erp_contact(world, one)["CntctKey"]
    with world.erp.begin() as conn:
        conn.execute(
            update(tciContact).where(tciContact.c.CntctKey == key).values(Phone="+15035550177")
        )
        cust_name = conn.scalar(select(tarCustomer.c.CustName).where(tarCustomer.c.CustID == one))
    pushed, [record] = _sync(world)
    assert pushed.mapping_versions[name] == f"{name}@v1"
    assert record.direction == "to_paytrace"
    profile = _profile(world, one)
    assert profile["phone"] == "+15035550177"
    assert profile["billing_address"]["name"] == cust_name.strip().upper()

    _, records = _sync(world)
    assert records == []
    with world.erp.connect() as conn:
        assert (
            conn.scalar(select(tarCustomer.c.CustName).where(tarCustomer.c.CustID == one))
            == cust_name
        )

    world.paytrace("/v1/customer/update", {"customer_id": one, "email": "card.desk@example.org"})
    _, [pulled] = _sync(world)
    assert pulled.direction == "to_ledger"
    assert set(pulled.changes) == {"email"}
    assert _erp_contact(world, one)["EMailAddr"] == "card.desk@example.org"
    with world.erp.connect() as conn:
        assert (
            conn.scalar(select(tarCustomer.c.CustName).where(tarCustomer.c.CustID == one))
            == cust_name
        )


def test_with_an_sbc_ledger_profiles_meet_contacts_through_the_sbc_specs(
    settings: Settings, tmp_path: Path
) -> None:
    with sbc_world(settings, tmp_path, people=6) as world:
        first, _ = _sync(world)
        assert first.status == "finished", first.counts
        assert first.total > 0, "the profiles pair with the members' SBC contacts"
        assert first.mapping_versions["paytrace_customer_to_sbc_contact"].startswith(
            "paytrace_customer_to_sbc_contact@package:"
        )
        assert "sbc_contact_to_paytrace_customer" in first.mapping_versions
        _, records = _sync(world)
        assert records == []  # what the first run agreed stays agreed

        one = profiles(world)[0]
        world.paytrace(
            "/v1/customer/update", {"customer_id": one, "email": "Card.Desk@Example.org"}
        )
        _, [pulled] = _sync(world)
        assert pulled.direction == "to_ledger"
        assert pulled.changes["email"]["after"] == "Card.Desk@example.org"

        async def emails() -> list[str]:
            async with world.ledger() as ledger:
                return [c.email async for c in ledger.customers()]

        assert "Card.Desk@example.org" in asyncio.run(emails())  # in SBC itself
        _, records = _sync(world)
        assert records == []


def test_a_profiles_run_stopped_between_pairs_keeps_what_it_wrote(world: PaymentsWorld) -> None:
    _sync(world)
    ids = profiles(world)
    for n, customer_id in enumerate(ids):
        world.paytrace(
            "/v1/customer/update", {"customer_id": customer_id, "email": f"stop{n}@example.org"}
        )
    runtime = world.runtime
    with runtime.db.transaction() as session:
        run_id = runs.start(session, None, ME, world.ledger_id, ["card_profiles"]).id
        connection = session.get(Connection, world.ledger_id)
        session.expunge(connection)
    checks: list[int] = []

    def stopping_after_one_pair() -> bool:
        checks.append(1)
        return len(checks) > 1

    async def go(**kwargs: Any) -> SyncRun:
        async with ledger_for(runtime, connection) as ledger:  # type: ignore[arg-type, attr-defined]
            return await runs.execute(
                runtime.db,
                run_id,
                ledger,
                ME,
                open_gateway=lambda c: gateway_for(runtime, c),
                mappings=MappingRepository(None),
                **kwargs,
            )

    with pytest.raises(JobInterrupted):
        asyncio.run(go(should_stop=stopping_after_one_pair))

    def keys() -> list[str]:
        with runtime.db.read() as session:
            return list(
                session.scalars(select(SyncRecord.record_key).where(SyncRecord.run_id == run_id))
            )

    assert len(keys()) == 1  # the pair written before the stop is in the log
    finished = asyncio.run(go())
    assert finished.status == "finished"
    assert sorted(keys()) == sorted(ids)  # every pair once: the first is not written again
