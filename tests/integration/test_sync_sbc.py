"""Member details, balances and transaction history synchronised with the SBC simulator,
over real HTTP, through ledgerlink's real connection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ledgerlink import demo
from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.connectors.factory import ledger_for
from ledgerlink.identity.principal import cli_principal
from ledgerlink.jobs.registry import JobInterrupted
from ledgerlink.mapping.loader import packaged_text
from ledgerlink.members import registry
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.settings import Settings
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.member_models import MemberLinkRow
from ledgerlink.store.models import AuditEntry, Connection
from ledgerlink.store.sync_models import (
    MemberBalance,
    MemberTransaction,
    SyncBaseline,
    SyncRecord,
    SyncRun,
)
from ledgerlink.sync import runs
from ledgerlink.sync.plan import Checkpoint
from tests.support.ledger_links import link_members
from tests.support.sbc import SbcClient, connect_ledgerlink, running_sbc
from tests.support.skewed_clock import SkewedClock

ME = cli_principal()
PEOPLE = 24


@dataclass
class World:
    runtime: Runtime
    connection_id: int
    sbc: SbcClient

    def ledger(self) -> Any:
        with self.runtime.db.read() as session:
            connection = session.get(Connection, self.connection_id)
            assert connection is not None
            session.expunge(connection)
        return ledger_for(self.runtime, connection)

    def sync(self, data_sets: list[str] | None = None, **kwargs: Any) -> SyncRun:
        with self.runtime.db.transaction() as session:
            run_id = runs.start(
                session, None, ME, self.connection_id, data_sets or ["member_details"], **kwargs
            ).id

        async def go() -> SyncRun:
            async with self.ledger() as ledger:
                return await runs.execute(
                    self.runtime.db, run_id, ledger, ME, mappings=MappingRepository(None)
                )

        return asyncio.run(go())

    def records(self, run_id: int) -> list[SyncRecord]:
        with self.runtime.db.read() as session:
            found = list(
                session.scalars(
                    select(SyncRecord).where(SyncRecord.run_id == run_id).order_by(SyncRecord.id)
                )
            )
            for record in found:
                session.expunge(record)
            return found

    def member(self, number: str) -> Any:
        with self.runtime.db.read() as session:
            return registry.load_member(session, registry.get_member(session, number))

    def edit_member(self, number: str, **changes: Any) -> None:
        from dataclasses import replace

        with self.runtime.db.transaction() as session:
            current = registry.load_member(session, registry.get_member(session, number))
            registry.update_member(session, ME, number, replace(current, **changes))

    def contact(self, number: str) -> dict[str, Any]:
        [found] = self.sbc.ok("/contacts", search=number, attributes="all")["$items"]
        return dict(found)

    def edit_contact(self, number: str, **body: Any) -> None:
        """Change some fields of the contact as a Sage user would (the rest stays)."""
        current = self.contact(number)
        for key in ("main_address", "main_contact_person"):
            if key in body:
                kept = {k: v for k, v in (current.get(key) or {}).items() if k != "country"}
                country = (current.get(key) or {}).get("country")
                if country:
                    kept["country_id"] = country["id"]
                body[key] = {**kept, **body[key]}
        response = self.sbc.put(f"/contacts/{current['id']}", "contact", body)
        assert response.status_code == 200, response.text


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[World]:
    with _world(settings, tmp_path, SYSTEM_CLOCK) as found:
        yield found


@pytest.fixture
def behind_world(settings: Settings, tmp_path: Path) -> Iterator[World]:
    """SBC's clock three hours behind ours."""
    with _world(settings, tmp_path, SkewedClock(-timedelta(hours=3))) as found:
        yield found


@contextmanager
def _world(settings: Settings, tmp_path: Path, clock: Clock) -> Iterator[World]:
    from ledgerlink.store.migrate import upgrade

    runtime = Runtime(settings)
    upgrade(runtime.db)
    with runtime.db.transaction() as session:
        demo.ensure_members(session, count=PEOPLE)
    config = SbcConfig(rate_limit_per_minute=0, seed_people=PEOPLE)
    with running_sbc(tmp_path / "sbc", config, clock=clock) as (base_url, used):
        connection_id = connect_ledgerlink(runtime, base_url)
        sbc = SbcClient(base_url, used).connect()
        world = World(runtime, connection_id, sbc)

        async def link_all() -> None:
            async with world.ledger() as ledger:
                numbers = [f"M{n:05d}" for n in range(1, PEOPLE + 1)]
                await link_members(runtime.db, ledger, connection_id, numbers)

        asyncio.run(link_all())
        try:
            yield world
        finally:
            sbc.close()
            runtime.db.dispose()


def test_the_first_run_agrees_every_link_and_a_second_run_writes_nothing(world: World) -> None:
    first = world.sync()
    assert first.status == "finished"
    assert first.total == PEOPLE
    # person 17 is "I. Name" in SBC (a near match): registry wins by default
    variant = world.contact("M00017")
    member = world.member("M00017")
    assert variant["name"] == member.display_name
    with world.runtime.db.read() as session:
        assert len(session.scalars(select(SyncBaseline)).all()) == PEOPLE
    second = world.sync()
    assert second.counts.get("updated", 0) == 0
    assert second.counts.get("failed", 0) == 0
    assert world.records(second.id) == []


def test_a_sage_change_is_picked_up_when_sages_clock_is_hours_behind_ours(
    behind_world: World,
) -> None:
    """The cursor is the newest change time SBC reported, not our clock: a change SBC
    stamps hours "before" our last run is still after the last change we read."""
    world = behind_world
    with world.runtime.db.transaction() as session:
        # no overlap: the members the fixture created seconds ago are not read again
        # for it, so only the ledger's cursor can bring M00004 in
        runs.settings_for(session, world.connection_id).overlap_seconds = 0
    assert world.sync().status == "finished"
    world.edit_contact("M00004", main_contact_person={"telephone": "(503) 555-0142"})
    run = world.sync()
    assert world.member("M00004").phone == "+15035550142"
    [record] = world.records(run.id)
    assert (record.record_key, record.direction) == ("M00004", "to_registry")
    # reading the overlap again writes nothing
    again = world.sync()
    assert world.records(again.id) == []
    assert again.counts.get("updated", 0) == 0


def test_a_registry_change_reaches_sage(world: World) -> None:
    world.sync()
    world.edit_member("M00002", email="new.address@example.org")
    run = world.sync()
    assert world.contact("M00002")["email"] == "new.address@example.org"
    [record] = world.records(run.id)
    assert (record.record_key, record.direction, record.action) == ("M00002", "to_ledger", "update")
    assert record.changes["email"]["after"] == "new.address@example.org"


def test_a_sage_change_reaches_the_registry_normalised_and_audited(world: World) -> None:
    world.sync()
    world.edit_contact(
        "M00004",
        main_contact_person={"telephone": "(503) 555-0199"},
        main_address={"city": "Salem", "country_id": "US"},
    )
    run = world.sync()
    member = world.member("M00004")
    assert member.phone == "+15035550199"
    assert member.address.city == "SALEM"  # USPS form, as the registry keeps US addresses
    [record] = world.records(run.id)
    assert record.direction == "to_registry"
    with world.runtime.db.read() as session:
        audited = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "member.updated", AuditEntry.entity_id == "M00004"
            )
        ).all()
    assert audited
    assert audited[-1].actor.startswith("cli:")


def test_conflicts_follow_each_fields_policy_and_are_recorded(world: World) -> None:
    world.sync()
    with world.runtime.db.transaction() as session:
        settings = runs.settings_for(session, world.connection_id)
        settings.field_policies = {"city": "ledger_wins", "email": "registry_wins"}
    world.edit_member("M00005", email="registry@example.org")
    world.edit_contact(
        "M00005",
        email="ledger@example.org",
        main_address={"city": "Ledger City", "country_id": "US"},
    )
    current = world.member("M00005").address
    world.edit_member("M00005", address=replace(current, city="REGISTRY CITY"))
    run = world.sync()
    assert world.contact("M00005")["email"] == "registry@example.org"
    assert world.member("M00005").address.city == "LEDGER CITY"
    [record] = world.records(run.id)
    assert record.action == "conflict"
    assert record.direction == "both"
    assert record.changes["email"]["conflict"] == {
        "registry": "registry@example.org",
        "ledger": "ledger@example.org",
        "winner": "registry",
    }
    assert record.changes["city"]["conflict"]["winner"] == "ledger"
    assert run.counts["conflicts"] == 1


def test_a_contact_deleted_in_sage_unlinks_the_member(world: World) -> None:
    world.sync()
    created = world.contact("M00003")  # person 3 was not in SBC: ledgerlink created it, no invoices
    assert world.sbc.delete(f"/contacts/{created['id']}").status_code == 204
    run = world.sync()
    [record] = world.records(run.id)
    assert (record.record_key, record.action) == ("M00003", "delete")
    with world.runtime.db.read() as session:
        link = session.scalars(
            select(MemberLinkRow).where(MemberLinkRow.customer_id == created["id"])
        ).one()
        assert link.unlinked_at is not None
        assert "deleted in the ledger" in (link.unlink_reason or "")


def test_a_value_the_registry_refuses_fails_with_a_fix_and_retry_picks_it_up(world: World) -> None:
    world.sync()
    world.edit_contact("M00006", main_contact_person={"telephone": "call the office"})
    run = world.sync()
    [record] = world.records(run.id)
    assert record.status == "failed"
    assert record.message.startswith("phone")
    assert record.fix
    world.edit_contact("M00006", main_contact_person={"telephone": "+1 503 555 0100"})
    retried = world.sync(trigger="retry", source_run_id=run.id)
    assert retried.counts.get("updated") == 1
    assert world.member("M00006").phone == "+15035550100"


def test_a_plan_writes_nothing_and_applying_it_does_exactly_that(world: World) -> None:
    world.sync()
    world.edit_member("M00007", email="planned@example.org")
    plan = world.sync(dry_run=True)
    assert plan.status == "planned"
    [record] = world.records(plan.id)
    assert record.status == "planned"
    assert record.changes["email"] == {
        "before": world.contact("M00007")["email"],
        "after": "planned@example.org",
        "side": "ledger",
    }
    assert world.contact("M00007")["email"] != "planned@example.org"  # nothing written
    applied = world.sync(trigger="plan", source_run_id=plan.id)
    assert applied.counts.get("updated") == 1
    assert world.contact("M00007")["email"] == "planned@example.org"


def test_a_plan_whose_data_moved_is_replanned_not_applied(world: World) -> None:
    world.sync()
    world.edit_member("M00008", email="first@example.org")
    plan = world.sync(dry_run=True)
    world.edit_member("M00008", email="second@example.org")
    applied = world.sync(trigger="plan", source_run_id=plan.id)
    assert applied.counts.get("stale_plan") == 1
    assert applied.counts.get("replanned_as")
    with world.runtime.db.read() as session:
        assert session.get(SyncRun, plan.id).status == "stale"  # type: ignore[union-attr]
    assert world.contact("M00008")["email"] not in ("first@example.org", "second@example.org")


def test_balances_and_history_of_linked_members(world: World) -> None:
    run = world.sync(["balances", "transactions"])
    assert run.status == "finished"
    member_one = world.contact("M00001")
    with world.runtime.db.read() as session:
        balance = session.scalars(select(MemberBalance).where(MemberBalance.member_id == 1)).one()
        history = session.scalars(
            select(MemberTransaction).where(MemberTransaction.member_id == 1)
        ).all()
    assert Decimal(str(member_one["balance"])) * 100 == balance.balance_minor
    invoices = world.sbc.all_items("/sales_invoices", contact_id=member_one["id"], attributes="all")
    assert {h.ledger_id for h in history if h.kind == "invoice"} == {i["id"] for i in invoices}
    # a new receipt shows up incrementally, and moves the balance
    response = world.sbc.post(
        "/contact_payments",
        "contact_payment",
        {
            "transaction_type_id": "CUSTOMER_RECEIPT",
            "contact_id": member_one["id"],
            "bank_account_id": world.sbc.first("bank_accounts")["id"],
            "date": date.today().isoformat(),
            "total_amount": "10.00",
            "reference": "walk-in",
        },
    )
    assert response.status_code == 201
    again = world.sync(["balances", "transactions"])
    assert again.counts.get("balances_updated") == 1
    with world.runtime.db.read() as session:
        receipt = session.get(
            MemberTransaction, (world.connection_id, f"payment:{response.json()['id']}")
        )
        assert receipt is not None
        assert receipt.kind == "receipt"
        assert receipt.total_minor == 1000
    third = world.sync(["balances", "transactions"])
    assert third.counts.get("balances_updated", 0) == 0
    assert third.counts.get("transactions_updated", 0) == 0


def test_credit_notes_are_in_the_history_and_a_void_takes_one_out(world: World) -> None:
    world.sync(["transactions"])
    member_two = world.contact("M00002")
    sales = world.sbc.sales_account_id()
    response = world.sbc.post(
        "/sales_credit_notes",
        "sales_credit_note",
        {
            "contact_id": member_two["id"],
            "date": date.today().isoformat(),
            "reference": "dues refund",
            "credit_note_lines": [
                {
                    "description": "Half-year dues returned",
                    "ledger_account_id": sales,
                    "quantity": 1,
                    "unit_price": "60.00",
                }
            ],
        },
    )
    assert response.status_code == 201, response.text
    note = response.json()
    assert note["credit_note_number"].startswith("SCN-")
    world.sync(["transactions", "balances"])
    with world.runtime.db.read() as session:
        credit = session.get(MemberTransaction, (world.connection_id, note["id"]))
        assert credit is not None
        assert (credit.kind, credit.number, credit.total_minor) == (
            "credit_note",
            note["credit_note_number"],
            6000,
        )
        balance = session.scalars(select(MemberBalance).where(MemberBalance.member_id == 2)).one()
    assert Decimal(str(world.contact("M00002")["balance"])) * 100 == balance.balance_minor
    voided = world.sbc.delete(f"/sales_credit_notes/{note['id']}", void_reason="issued in error")
    assert voided.status_code == 200, voided.text
    world.sync(["transactions"])
    with world.runtime.db.read() as session:
        assert session.get(MemberTransaction, (world.connection_id, note["id"])) is None


def test_a_resumed_run_logs_what_it_wrote_before_it_was_interrupted(world: World) -> None:
    world.sync()
    world.edit_member("M00005", email="moved.before.kill@example.org")
    # the interrupted attempt had written it to Sage, then died before its page committed
    world.edit_contact("M00005", email="moved.before.kill@example.org")
    with world.runtime.db.transaction() as session:
        run = runs.start(session, None, ME, world.connection_id, ["member_details"])
        run.status = "running"
        run.checkpoint = {"member_details": 1}
        run_id = run.id

    async def resume() -> SyncRun:
        async with world.ledger() as ledger:
            return await runs.execute(
                world.runtime.db, run_id, ledger, ME, mappings=MappingRepository(None)
            )

    resumed = asyncio.run(resume())
    assert resumed.status == "finished"
    [record] = [r for r in world.records(run_id) if r.record_key == "M00005"]
    assert (record.action, record.status, record.direction) == ("update", "done", "to_ledger")
    assert record.changes["email"]["after"] == "moved.before.kill@example.org"
    assert "before the run was interrupted" in record.message
    again = world.sync()
    assert world.records(again.id) == []  # and it is not written or logged again


def test_runs_map_through_the_editable_specs_and_record_their_versions(world: World) -> None:
    """Finance changes how a member becomes an SBC contact (names in capitals): the next
    write uses the new spec and the run records its version; the registry keeps its own
    spelling while other fields still flow back; rolling back restores the shipped form."""
    first = world.sync()
    assert first.mapping_versions["member_to_sbc_contact"].startswith(
        "member_to_sbc_contact@package:"
    )
    assert first.mapping_versions["sbc_contact_to_member"].startswith(
        "sbc_contact_to_member@package:"
    )
    repository = MappingRepository(None)
    shipped = packaged_text("member_to_sbc_contact")
    assert shipped is not None
    rule = "expr: if(source.account_type == 'corporate', clean(source.company_name), vars.person)"
    assert rule in shipped
    capitals = shipped.replace(rule, rule.replace("expr: if(", "expr: upper(if(") + ")")
    with world.runtime.db.transaction() as session:
        repository.save(session, ME, "member_to_sbc_contact", capitals, "names in capitals")

    world.edit_member("M00003", email="new3@example.org")
    second = world.sync()
    assert second.mapping_versions["member_to_sbc_contact"] == "member_to_sbc_contact@v1"
    member = world.member("M00003")
    contact = world.contact("M00003")
    assert contact["email"] == "new3@example.org"
    assert contact["name"] == member.display_name.upper()

    world.edit_contact("M00003", email="desk3@example.org")
    third = world.sync()
    assert third.counts.get("conflicts", 0) == 0
    after = world.member("M00003")
    assert after.email == "desk3@example.org"
    assert after.display_name == member.display_name  # not the ledger's capitals
    assert world.sync().counts.get("updated", 0) == 0

    with world.runtime.db.transaction() as session:
        repository.rollback(session, ME, "member_to_sbc_contact", 0, "back to the default")
    # The contact still has the capitals the earlier spec wrote: not a change made in SBC.
    world.edit_contact("M00003", email="desk.again3@example.org")
    world.sync()
    after = world.member("M00003")
    assert after.email == "desk.again3@example.org"
    assert after.display_name == member.display_name
    world.edit_member("M00003", email="again3@example.org")
    fourth = world.sync()
    assert fourth.mapping_versions["member_to_sbc_contact"] == "member_to_sbc_contact@v2"
    assert world.contact("M00003")["name"] == member.display_name
    assert world.sync().counts.get("updated", 0) == 0


def test_a_spec_that_cannot_map_a_member_fails_that_record_and_says_which_spec(
    world: World,
) -> None:
    world.sync()
    shipped = packaged_text("member_to_sbc_contact")
    assert shipped is not None
    rule = "expr: if(source.account_type == 'corporate', clean(source.company_name), vars.person)"
    broken = shipped.replace(rule, "expr: number(source.first_name)")
    with world.runtime.db.transaction() as session:
        MappingRepository(None).save(session, ME, "member_to_sbc_contact", broken, "oops")
    before = world.contact("M00005")
    world.edit_member("M00005", email="five@example.org")
    run = world.sync()
    assert run.status == "finished"
    assert run.counts.get("failed") == 1
    [failed] = [r for r in world.records(run.id) if r.status == "failed"]
    assert failed.record_key == "M00005"
    assert "member_to_sbc_contact@v1" in failed.message
    assert "name" in failed.message
    assert "Mappings" in failed.fix
    assert world.contact("M00005")["email"] == before["email"]  # nothing half-written
    assert world.member("M00005").email == "five@example.org"  # the registry keeps its edit


def test_a_remap_run_rewrites_every_customer_the_way_a_changed_spec_says(world: World) -> None:
    """After the member → contact spec changes, a normal run writes only members that
    changed; a plan with remap shows every contact the spec now writes differently, and
    applying it rewrites them (the registry untouched), after which there is nothing left."""
    world.sync()
    shipped = packaged_text("member_to_sbc_contact")
    assert shipped is not None
    rule = "expr: if(source.account_type == 'corporate', clean(source.company_name), vars.person)"
    capitals = shipped.replace(rule, rule.replace("expr: if(", "expr: upper(if(") + ")")
    with world.runtime.db.transaction() as session:
        MappingRepository(None).save(session, ME, "member_to_sbc_contact", capitals, "capitals")
    assert world.sync().counts.get("updated", 0) == 0  # nothing changed: nothing written

    registry_before = {f"M{n:05d}": world.member(f"M{n:05d}") for n in range(1, PEOPLE + 1)}
    plan = world.sync(dry_run=True, remap=True)
    assert plan.status == "planned"
    planned = [r for r in world.records(plan.id) if r.status == "planned"]
    assert len(planned) == PEOPLE
    first = next(r for r in planned if r.record_key == "M00001")
    name = registry_before["M00001"].display_name
    assert first.changes["name"] == {"before": name, "after": name.upper(), "side": "ledger"}
    assert world.contact("M00001")["name"] == name  # a plan writes nothing

    with world.runtime.db.transaction() as session:
        applying = runs.start_follow_up(session, None, ME, plan.id, "plan").id

    async def go() -> SyncRun:
        async with world.ledger() as ledger:
            return await runs.execute(
                world.runtime.db, applying, ledger, ME, mappings=MappingRepository(None)
            )

    applied = asyncio.run(go())
    assert applied.counts.get("updated") == PEOPLE, applied.counts
    for number, member in registry_before.items():
        assert world.contact(number)["name"] == member.display_name.upper()
        assert world.member(number) == member  # the registry keeps its own spelling
    assert world.sync().counts.get("updated", 0) == 0
    assert world.sync(remap=True).counts.get("updated", 0) == 0


def test_a_run_handed_back_by_a_stopping_runner_resumes_where_it_stopped(world: World) -> None:
    """The job runner is stopping: the run stops between pages (what it did is committed),
    stays running, and the next attempt does the rest; every member is written once."""
    world.sync()
    for n in range(1, PEOPLE + 1):
        world.edit_member(f"M{n:05d}", email=f"handed.back{n}@example.org")
    with world.runtime.db.transaction() as session:
        run_id = runs.start(session, None, ME, world.connection_id, ["member_details"]).id
    checks: list[int] = []

    def stopping_after_two_pages() -> bool:
        checks.append(1)
        return len(checks) > 2

    async def go(**kwargs: Any) -> SyncRun:
        async with world.ledger() as ledger:
            return await runs.execute(
                world.runtime.db,
                run_id,
                ledger,
                ME,
                page_size=5,
                **kwargs,
                mappings=MappingRepository(None),
            )

    with pytest.raises(JobInterrupted):
        asyncio.run(go(should_stop=stopping_after_two_pages))
    with world.runtime.db.read() as session:
        halfway = session.get(SyncRun, run_id)
        assert halfway is not None
        assert (halfway.status, halfway.done) == ("running", 10)
    finished = asyncio.run(go())
    assert finished.status == "finished"
    assert finished.counts.get("updated") == PEOPLE
    keys = [r.record_key for r in world.records(run_id)]
    assert sorted(keys) == sorted(f"M{n:05d}" for n in range(1, PEOPLE + 1))  # once each
    assert world.contact("M00024")["email"] == "handed.back24@example.org"


def test_a_run_interrupted_before_an_upgrade_resumes_from_its_stored_checkpoint(
    world: World,
) -> None:
    """``sync_runs.checkpoint`` as earlier versions stored it (the last member id of the
    committed page, as a number) is where the upgraded code resumes."""
    world.sync()
    for n in range(1, PEOPLE + 1):
        world.edit_member(f"M{n:05d}", email=f"upgraded{n}@example.org")
    with world.runtime.db.transaction() as session:
        run = runs.start(session, None, ME, world.connection_id, ["member_details"])
        ids = sorted(session.scalars(select(MemberLinkRow.member_id)))
        after = ids[9]  # the tenth linked member: the last of the committed pages
        run.status, run.total, run.done = "running", PEOPLE, 10
        run.checkpoint = {"member_details": after}  # the stored shape before typed plans
        run.counts = {"updated": 10}
        run_id = run.id

    async def go() -> SyncRun:
        async with world.ledger() as ledger:
            return await runs.execute(
                world.runtime.db, run_id, ledger, ME, mappings=MappingRepository(None)
            )

    finished = asyncio.run(go())
    assert finished.status == "finished"
    assert finished.done == PEOPLE
    assert Checkpoint.from_json(finished.checkpoint).done == {"member_details"}
    written = world.records(run_id)
    assert written
    assert all(r.member_id is not None and r.member_id > after for r in written)
    assert len(written) == PEOPLE - 10
    assert world.contact("M00024")["email"] == "upgraded24@example.org"
    assert world.contact("M00001")["email"] != "upgraded1@example.org"  # before the checkpoint
