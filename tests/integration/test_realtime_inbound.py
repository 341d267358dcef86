"""Ledgers → registry in near real time: a change made in the SBC sandbox (over real HTTP)
or in the Sage 500 simulator's tables reaches the registry at the next poll, through the
same merge and specs as a full run, on both back-ends (embedded jobs on SQLite,
procrastinate on PostgreSQL). Polls are moved by running the poll job's link directly,
never by sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from ledgerlink import connections, demo
from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.connectors.factory import ledger_for
from ledgerlink.connectors.sage500.tables import tarCustomer, tciContact
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.members import registry
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.settings import Settings
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import Connection
from ledgerlink.store.realtime_inbound_models import RealtimePoll
from ledgerlink.store.realtime_models import RealtimeWrite
from ledgerlink.store.sync_models import SyncRecord, SyncRun
from ledgerlink.sync import live_feed, runs
from ledgerlink.sync import realtime_inbound_jobs as polling
from tests.support.job_tasks import worker_thread
from tests.support.ledger_links import link_members
from tests.support.payments import add_sage500_connection, running_erp
from tests.support.sbc import SbcClient, connect_ledgerlink, running_sbc
from tests.support.skewed_clock import SkewedClock
from tests.support.waiting import wait_until
from tests.support.web import make_user, sign_in

ME = cli_principal()
PEOPLE = 8


@dataclass
class World:
    runtime: Runtime
    connection_id: int
    sbc: SbcClient | None = None
    erp: Any = None

    def full_sync(self) -> SyncRun:
        with self.runtime.db.transaction() as session:
            run_id = runs.start(session, None, ME, self.connection_id, ["member_details"]).id
            connection = session.get(Connection, self.connection_id)
            assert connection is not None
            session.expunge(connection)

        async def go() -> SyncRun:
            async with ledger_for(self.runtime, connection) as ledger:  # type: ignore[attr-defined]
                return await runs.execute(
                    self.runtime.db, run_id, ledger, ME, mappings=MappingRepository(None)
                )

        run = asyncio.run(go())
        assert run.status == "finished", run.error
        return run

    def start_polling(self) -> int:
        """What the minutely watch does for a connection with no live chain."""
        with self.runtime.db.transaction() as session:
            assert polling.watch(session, self.runtime.jobs) == [self.connection_id]
            return _chain(session, self.connection_id)

    def poll(self) -> Any:
        """Run the chain's current link (the job the queue would run next)."""
        with self.runtime.db.read() as session:
            chain = _chain(session, self.connection_id)
        result = polling.run_poll(self.runtime, self.connection_id, chain)
        assert result is not None, "the current chain must poll"
        return result

    def set_rate_limit(self, per_minute: int) -> None:
        """The connection's requests a minute (its client-side throttle and budget)."""
        with self.runtime.db.transaction() as session:
            connection = session.get(Connection, self.connection_id)
            assert connection is not None
            settings = {"rate_limit_per_minute": per_minute}
            connections.update(session, self.runtime.vault, ME, connection, settings=settings)

    def state(self) -> RealtimePoll:
        with self.runtime.db.read() as session:
            state = session.get(RealtimePoll, self.connection_id)
            assert state is not None
            session.expunge(state)
            return state

    def member(self, number: str) -> Any:
        with self.runtime.db.read() as session:
            return registry.load_member(session, registry.get_member(session, number))

    def writes(self) -> list[RealtimeWrite]:
        with self.runtime.db.read() as session:
            found = list(session.scalars(select(RealtimeWrite).order_by(RealtimeWrite.id)))
            for row in found:
                session.expunge(row)
            return found

    # -- SBC, as a Sage user would change a contact ------------------------------------------

    def contact(self, number: str) -> dict[str, Any]:
        assert self.sbc is not None
        [found] = self.sbc.ok("/contacts", search=number, attributes="all")["$items"]
        return dict(found)

    def edit_contact(self, number: str, telephone: str) -> None:
        assert self.sbc is not None
        current = self.contact(number)
        person = {k: v for k, v in (current.get("main_contact_person") or {}).items()}
        person.pop("country", None)
        person["telephone"] = telephone
        response = self.sbc.put(
            f"/contacts/{current['id']}", "contact", {"main_contact_person": person}
        )
        assert response.status_code == 200, response.text


def _chain(session: Any, connection_id: int) -> int:
    state = session.get(RealtimePoll, connection_id)
    assert state is not None
    return int(state.chain)


@contextmanager
def _sbc_world(
    settings: Settings, tmp_path: Path, clock: Clock = SYSTEM_CLOCK, rate_limit: int = 0
) -> Iterator[World]:
    from ledgerlink.store.migrate import upgrade

    runtime = Runtime(settings)
    upgrade(runtime.db)
    with runtime.db.transaction() as session:
        demo.ensure_members(session, count=PEOPLE)
    config = SbcConfig(rate_limit_per_minute=0, seed_people=PEOPLE)
    with running_sbc(tmp_path / "sbc", config, clock=clock) as (base_url, used):
        connection_id = connect_ledgerlink(runtime, base_url)
        sbc = SbcClient(base_url, used).connect()
        world = World(runtime, connection_id, sbc=sbc)
        with runtime.db.read() as session:
            connection = session.get(Connection, connection_id)
            assert connection is not None
            session.expunge(connection)

        async def link_all() -> None:
            async with ledger_for(runtime, connection) as ledger:  # type: ignore[attr-defined]
                numbers = [f"M{n:05d}" for n in range(1, PEOPLE + 1)]
                await link_members(runtime.db, ledger, connection_id, numbers)

        asyncio.run(link_all())
        if rate_limit:  # set once linked: linking at 100 requests a minute takes seconds
            world.set_rate_limit(rate_limit)
        try:
            yield world
        finally:
            sbc.close()
            runtime.db.dispose()


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[World]:
    with _sbc_world(settings, tmp_path) as found:
        yield found


@pytest.fixture
def behind_world(settings: Settings, tmp_path: Path) -> Iterator[World]:
    """SBC's clock three hours behind ours."""
    with _sbc_world(settings, tmp_path, SkewedClock(-timedelta(hours=3))) as found:
        yield found


@pytest.fixture
def erp_world(settings: Settings, tmp_path: Path) -> Iterator[World]:
    from ledgerlink.store.migrate import upgrade

    runtime = Runtime(settings)
    upgrade(runtime.db)
    url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    with running_erp(url, PEOPLE) as engine:
        with runtime.db.transaction() as session:
            demo.ensure_members(session, count=PEOPLE)
            connection_id = add_sage500_connection(runtime, session, url).id
            session.get(Connection, connection_id).is_active = True  # type: ignore[union-attr]
            members = dict(session.execute(select(MemberRow.number, MemberRow.id)).tuples().all())
            now = datetime.now(UTC)
            session.execute(
                insert(MemberLinkRow),
                [
                    {
                        "member_id": members[f"M{n:05d}"],
                        "connection_id": connection_id,
                        "system": "sage500",
                        "customer_id": str(n),
                        "customer_number": f"C{n:05d}",
                        "customer_name": "",
                        "created_customer": False,
                        "linked_at": now,
                        "linked_by": "test",
                    }
                    for n in range(1, PEOPLE + 1)
                ],
            )
        yield World(runtime, connection_id, erp=engine)
    runtime.db.dispose()


def _edit_in_erp(engine: Any, cust_key: int, **contact: str) -> None:
    """Change a customer's contact as a Sage 500 user would: UpdateDate moves."""
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1)
    with engine.begin() as conn:
        key = conn.scalar(
            select(tarCustomer.c.PrimaryCntctKey).where(tarCustomer.c.CustKey == cust_key)
        )
        conn.execute(update(tciContact).where(tciContact.c.CntctKey == key).values(**contact))
        conn.execute(
            update(tarCustomer)
            .where(tarCustomer.c.CustKey == cust_key)
            .values(UpdateDate=later, UpdateCounter=tarCustomer.c.UpdateCounter + 1)
        )


# -- SBC ------------------------------------------------------------------------------------------


def test_a_contact_edited_in_sbc_reaches_the_registry_at_the_next_poll(world: World) -> None:
    world.full_sync()
    world.start_polling()
    first = world.poll()  # the chain's first poll: nothing changed since the full run
    assert first.polled
    assert first.written == 0
    world.edit_contact("M00004", "(503) 555-0142")
    before = datetime.now(UTC)
    result = world.poll()
    assert result.written == 1
    assert world.member("M00004").phone == "+15035550142"
    [write] = world.writes()
    assert (write.direction, write.outcome) == ("to_registry", "written")
    assert "phone" in write.detail
    # the next link of the chain is queued one interval on (30 s by default)
    state = world.state()
    assert state.effective_seconds == 30
    assert state.next_at is not None
    assert timedelta(seconds=25) <= state.next_at - before <= timedelta(seconds=35)
    # what the overlap reads again writes nothing, and the link that ran stands down
    assert world.poll().written == 0
    assert polling.run_poll(world.runtime, world.connection_id, state.chain - 1) is None
    assert len(world.writes()) == 1


def test_polling_waits_for_the_first_full_sync_and_reads_nothing_before(world: World) -> None:
    """The first agreement of each link (first-sync differences settled by policy) is a
    full run's, which a plan can show first; polls only keep links agreeing after it."""
    world.start_polling()
    world.edit_contact("M00003", "(503) 555-0133")
    early = world.poll()
    assert not early.polled
    assert early.requests == 0
    assert "first full sync" in early.outcome
    assert world.writes() == []
    world.full_sync()
    world.edit_contact("M00003", "(503) 555-0134")
    assert world.poll().written == 1
    assert world.member("M00003").phone == "+15035550134"


def test_the_poll_chain_runs_in_the_job_worker_of_each_back_end(world: World) -> None:
    """The embedded runner on SQLite, procrastinate on PostgreSQL: the minutely watch
    starts the chain, the worker runs its first poll at once, and that poll queues the
    next one an interval later."""
    world.full_sync()
    world.edit_contact("M00005", "(503) 555-0155")
    with worker_thread(world.runtime.settings):
        chain = world.start_polling()
        wait_until(
            lambda: world.member("M00005").phone == "+15035550155",
            timeout=10,
            what="the SBC change in the registry",
        )
        wait_until(lambda: world.state().chain == chain + 1, timeout=5, what="the next link")
    next_at = world.state().next_at
    assert next_at is not None
    assert next_at - datetime.now(UTC) > timedelta(seconds=20)


def test_a_change_is_read_when_sbcs_clock_is_hours_behind_ours(behind_world: World) -> None:
    """The poll cursor is the newest change time SBC reported: a change SBC stamps hours
    "before" our last poll is still after the last change it read."""
    world = behind_world
    with world.runtime.db.transaction() as session:
        runs.settings_for(session, world.connection_id).overlap_seconds = 0
    world.full_sync()
    world.start_polling()
    world.poll()
    world.edit_contact("M00002", "(503) 555-0177")
    assert world.poll().written == 1
    assert world.member("M00002").phone == "+15035550177"
    cursor = world.state().ledger_until
    assert cursor is not None
    assert cursor < datetime.now(UTC) - timedelta(hours=2)


def test_a_value_the_registry_refuses_is_logged_with_a_fix_and_blocks_no_one(
    world: World,
) -> None:
    world.full_sync()
    world.start_polling()
    world.poll()
    world.edit_contact("M00006", "call the office")
    world.edit_contact("M00007", "(503) 555-0100")
    result = world.poll()
    assert (result.written, result.refused) == (1, 1)
    assert world.member("M00007").phone == "+15035550100"
    with world.runtime.db.read() as session:
        [failed] = session.scalars(select(SyncRecord).where(SyncRecord.status == "failed")).all()
        run = session.get(SyncRun, failed.run_id)
        assert run is not None
        assert run.trigger == "poll"
    assert failed.record_key == "M00006"
    assert failed.message.startswith("phone")
    assert failed.fix
    refused = [w for w in world.writes() if w.outcome == "refused"]
    assert refused
    assert "phone" in refused[0].detail
    assert "fix" in refused[0].detail


def test_a_poll_waits_while_a_full_run_of_the_connection_is_going(world: World) -> None:
    world.full_sync()
    world.start_polling()
    world.edit_contact("M00003", "(503) 555-0133")
    with world.runtime.db.transaction() as session:
        busy = runs.start(session, None, ME, world.connection_id, ["member_details"]).id
    result = world.poll()
    assert not result.polled
    assert f"run {busy}" in result.outcome
    assert world.member("M00003").phone != "+15035550133"
    assert world.writes() == []


def test_polling_stretches_its_interval_when_its_share_of_the_budget_is_used(
    world: World,
) -> None:
    """SBC's 100 requests a minute: polling may use 20. Polling every 5 s at the cost of
    a poll would use more, so the next poll waits until the share holds."""
    world.full_sync()
    world.set_rate_limit(100)
    world.start_polling()
    with world.runtime.db.transaction() as session:
        polling.save_polling(
            session,
            world.runtime.jobs,
            ME,
            world.connection_id,
            interval_typed="5",
            enabled=True,
        )
    result = world.poll()
    assert result.requests >= 2
    state = world.state()
    needed = -(-60 * result.requests // 20)
    assert state.interval_seconds == 5
    assert state.effective_seconds == needed > 5
    assert state.next_at is not None
    assert state.next_at - datetime.now(UTC) > timedelta(seconds=needed - 5)


# -- Sage 500 -------------------------------------------------------------------------------------


def test_a_sage_500_customer_changed_by_update_date_reaches_the_registry(
    erp_world: World,
) -> None:
    world = erp_world
    world.full_sync()
    world.start_polling()
    world.poll()
    _edit_in_erp(world.erp, 5, EMailAddr="erp.changed@example.org")
    result = world.poll()
    assert result.written == 1
    assert world.member("M00005").email == "erp.changed@example.org"
    # Sage 500 is read over SQL: no request limit, the interval is kept
    assert world.state().effective_seconds == 30


# -- portal ---------------------------------------------------------------------------------------


def test_the_connection_page_shows_the_budget_split_and_refuses_a_bad_interval(
    client: Any, world: World
) -> None:
    world.set_rate_limit(1000)
    csrf = sign_in(client, make_user(world.runtime.db, Role.ADMIN).email)
    page = client.get(f"/connections/{world.connection_id}")
    assert page.status_code == 200
    assert (
        "Of the 1000 requests a minute this connection may send: polling up to 200, "
        "payments 300, full syncs 400, free 100."
    ) in page.text
    bad = client.post(
        f"/connections/{world.connection_id}/polling",
        data={"csrftoken": csrf, "polling": "on", "poll_interval_seconds": "2"},
        follow_redirects=False,
    )
    assert bad.status_code == 422
    assert 'data-testid="error-poll_interval_seconds"' in bad.text
    assert "between 5 and 3600" in bad.text
    assert 'value="2"' in bad.text
    with world.runtime.db.read() as session:  # nothing stored
        assert session.get(RealtimePoll, world.connection_id) is None
    saved = client.post(
        f"/connections/{world.connection_id}/polling",
        data={"csrftoken": csrf, "polling": "on", "poll_interval_seconds": "45"},
        follow_redirects=True,
    )
    assert saved.status_code == 200
    assert world.state().interval_seconds == 45
    assert "every 45 s" in saved.text


def test_the_member_page_says_when_each_ledger_last_agreed(client: Any, world: World) -> None:
    sign_in(client, make_user(world.runtime.db, Role.VIEWER).email)
    page = client.get("/members/M00004")
    assert "Last in agreement" in page.text
    assert "not yet known" in page.text
    world.full_sync()
    world.start_polling()  # the watch marks the members the full run left agreeing
    page = client.get("/members/M00004")
    assert "not yet known" not in page.text
    world.edit_contact("M00004", "(503) 555-0142")
    world.poll()
    [write] = world.writes()
    page = client.get("/members/M00004")
    assert write.written_at.strftime("%Y-%m-%d %H:%M:%S") in page.text


def test_a_member_refused_by_the_registry_keeps_its_older_agreement(
    settings: Settings, tmp_path: Path
) -> None:
    """Refused in a poll, the member is not in agreement, also after later full runs that
    do not read it again (their cursor is past the change); the others move on."""
    sbc_clock = SkewedClock(timedelta(0))  # moved on below, instead of waiting
    with _sbc_world(settings, tmp_path, sbc_clock) as world:
        _refused_keeps_agreement(world, sbc_clock)


def _refused_keeps_agreement(world: World, sbc_clock: SkewedClock) -> None:
    with world.runtime.db.transaction() as session:
        runs.settings_for(session, world.connection_id).overlap_seconds = 0
    world.full_sync()
    world.start_polling()

    def agreed(number: str) -> datetime:
        with world.runtime.db.read() as session:
            member_id = registry.get_member(session, number).id
            return live_feed.last_in_agreement(session, member_id)[world.connection_id]

    before = agreed("M00006")
    world.edit_contact("M00006", "call the office")
    assert world.poll().refused == 1
    sbc_clock.offset += timedelta(seconds=5)  # SBC stamps whole seconds
    world.edit_contact("M00007", "(503) 555-0107")  # a later change moves the cursor on
    world.full_sync()  # reads both changes again and fails M00006 again
    later = world.full_sync()  # reads from M00007's change: M00006 is not read
    assert later.counts.get("failed", 0) == 0
    with world.runtime.db.transaction() as session:
        polling.watch(session, world.runtime.jobs)
    assert agreed("M00006") == before
    assert agreed("M00001") == later.finished_at
