"""Registry → ledger in real time (issue 21): a member changed in the portal is written to
its SBC contact within seconds by the job the change enqueued, through a full run's merge,
specs, records and baselines; bursts are coalesced, a change during a write is not lost,
a refusal is logged with the field and blocks no one, and the Sync page shows the feed.

Real parts throughout: the portal over the FastAPI test client (sign-in, CSRF), a job
worker (embedded runner on SQLite, procrastinate on PostgreSQL), the SBC simulator over a
real socket. The simulator is wrapped to count (and, in one test, hold) contact writes.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Receive, Scope, Send

from ledgerlink import demo
from ledgerlink.connectors.factory import ledger_for
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.jobs.registry import JobContext
from ledgerlink.members import registry
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.sbc import SbcConfig, create_app
from ledgerlink.settings import Settings
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.models import Connection
from ledgerlink.store.realtime_models import RealtimeOutbox, RealtimeWrite
from ledgerlink.store.sync_models import SyncRecord, SyncRun
from ledgerlink.sync import realtime_inbound, starting
from tests.support.asgi_server import serve_in_thread
from tests.support.job_tasks import worker_thread
from tests.support.ledger_links import link_members
from tests.support.sbc import SbcClient, connect_ledgerlink
from tests.support.waiting import wait_until
from tests.support.web import make_user, sign_in

PEOPLE = 4


@dataclass
class ContactWrites:
    """The simulator behind a gate that counts contact updates (PUT /contacts/{id}) and can
    hold them, to land an edit while a write is under way."""

    app: ASGIApp
    puts: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)  # GET /contacts/{id}
    open: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.open.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and "/contacts/" in scope["path"]:
            self.reads.append(scope["path"].rsplit("/", 1)[-1])
        if scope["type"] == "http" and scope["method"] == "PUT" and "/contacts/" in scope["path"]:
            self.puts.append(scope["path"].rsplit("/", 1)[-1])
            self.entered.set()
            while not self.open.is_set():
                await asyncio.sleep(0.01)
        await self.app(scope, receive, send)


@dataclass
class World:
    runtime: Runtime
    connection_id: int
    sbc: SbcClient
    writes: ContactWrites
    client: TestClient
    csrf: str

    def contact(self, number: str) -> dict[str, Any]:
        [found] = self.sbc.ok("/contacts", search=number, attributes="all")["$items"]
        return dict(found)

    def edit_in_portal(self, number: str, **changes: str) -> None:
        """What an operator does: open the member's form, change fields, save."""
        form = self.client.get(f"/members/{number}/edit")
        assert form.status_code == 200, form.text
        typed = _typed(form.text)
        typed.update(changes, csrftoken=self.csrf)
        saved = self.client.post(f"/members/{number}/edit", data=typed, follow_redirects=False)
        assert saved.status_code == 303, saved.text

    def member_id(self, number: str) -> int:
        with self.runtime.db.read() as session:
            return registry.get_member(session, number).id

    def feed(self, number: str) -> list[RealtimeWrite]:
        member_id = self.member_id(number)
        with self.runtime.db.read() as session:
            found = list(
                session.scalars(
                    select(RealtimeWrite)
                    .where(RealtimeWrite.member_id == member_id)
                    .order_by(RealtimeWrite.id)
                )
            )
            for row in found:
                session.expunge(row)
            return found

    def contact_id(self, number: str) -> str:
        return str(self.contact(number)["id"])


def _typed(html: str) -> dict[str, str]:
    form = BeautifulSoup(html, "html.parser").find("form", id="member-form")
    assert form is not None, "no member form on the page"
    typed: dict[str, str] = {}
    for found in form.find_all(["input", "select"]):
        name = str(found.get("name") or "")
        if found.name == "select":
            chosen = found.find("option", selected=True)
            typed[name] = str(chosen.get("value", "")) if chosen else ""
        else:
            typed[name] = str(found.get("value", ""))
    return typed


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[World]:
    runtime = Runtime(settings)
    upgrade(runtime.db)
    with runtime.db.transaction() as session:
        demo.ensure_members(session, count=PEOPLE)
    config = SbcConfig(auto_approve=True, rate_limit_per_minute=0, seed_people=PEOPLE)
    writes = ContactWrites(create_app(tmp_path / "sbc", config=config))
    with serve_in_thread(writes) as base_url:
        connection_id = connect_ledgerlink(runtime, base_url)
        sbc = SbcClient(base_url, config).connect()

        async def link_all() -> None:
            with runtime.db.read() as session:
                connection = session.get(Connection, connection_id)
                assert connection is not None
                session.expunge(connection)
            async with ledger_for(runtime, connection) as ledger:
                numbers = [f"M{n:05d}" for n in range(1, PEOPLE + 1)]
                await link_members(runtime.db, ledger, connection_id, numbers)

        asyncio.run(link_all())
        with runtime.db.transaction() as session:
            # SBC → registry polling off: the writes under test are the registry's own
            realtime_inbound.poll_state(session, connection_id).enabled = False
        writes.puts.clear()
        writes.entered.clear()  # linking updated contacts too
        # the portal in its own process's runtime, without its embedded worker: the
        # worker below (embedded runner or procrastinate, by back-end) runs the jobs
        from ledgerlink.web.app import create_app as create_web_app

        settings.run_embedded_worker = False
        with TestClient(create_web_app(settings), base_url="http://127.0.0.1") as client:
            account = make_user(runtime.db, Role.OPERATOR)
            csrf = sign_in(client, account.email)
            with worker_thread(settings):
                try:
                    yield World(runtime, connection_id, sbc, writes, client, csrf)
                finally:
                    sbc.close()
    runtime.db.dispose()


def test_a_member_edited_in_the_portal_reaches_the_sbc_contact_within_five_seconds(
    world: World,
) -> None:
    world.edit_in_portal("M00002", email="new.address@example.org")
    wait_until(
        lambda: world.contact("M00002")["email"] == "new.address@example.org",
        timeout=5,
        what="the new e-mail on the SBC contact",
    )
    # the write's record commits just after SBC answered
    [entry] = wait_until(lambda: world.feed("M00002"), timeout=10, what="the write in the feed")
    assert (entry.outcome, entry.direction) == ("written", "to_ledger")
    assert entry.lag_ms < 5000
    with world.runtime.db.read() as session:
        # the same log as a full run: the day's real-time run holds the record of the change
        [record] = session.scalars(
            select(SyncRecord).where(SyncRecord.member_id == world.member_id("M00002"))
        ).all()
        run = session.get(SyncRun, record.run_id)
        assert run is not None
        assert run.trigger == "realtime"
        assert (record.status, record.direction) == ("done", "to_ledger")
        assert record.changes["email"]["after"] == "new.address@example.org"
        assert session.scalars(select(RealtimeOutbox)).all() == []


def _outbox_empty(world: World) -> bool:
    with world.runtime.db.read() as session:
        return not session.scalars(select(RealtimeOutbox)).all()


def test_a_burst_of_twenty_edits_is_written_once_or_a_few_times_and_the_last_value_wins(
    world: World,
) -> None:
    contact_id = world.contact_id("M00003")
    for n in range(20):
        world.edit_in_portal("M00003", email=f"burst{n}@example.org")
    wait_until(
        lambda: world.contact("M00003")["email"] == "burst19@example.org" and _outbox_empty(world),
        timeout=10,
        what="the last of the twenty e-mails on the SBC contact",
    )
    writes = world.writes.puts.count(contact_id)
    assert 1 <= writes <= 4, f"{writes} contact writes for 20 edits"


def test_an_edit_landing_while_the_member_is_being_written_is_written_next(
    world: World,
) -> None:
    world.writes.open.clear()  # the first write waits at SBC's door
    world.edit_in_portal("M00002", email="first@example.org")
    assert world.writes.entered.wait(5), "the first write never reached SBC"
    world.edit_in_portal("M00002", email="second@example.org")  # the job is running now
    world.writes.open.set()
    wait_until(
        lambda: world.contact("M00002")["email"] == "second@example.org",
        timeout=10,
        what="the edit made during the first write on the SBC contact",
    )
    wait_until(lambda: world.feed("M00002")[1:], timeout=10, what="the second write's record")
    assert [e.outcome for e in world.feed("M00002")] == ["written", "written"]


def test_a_refusal_is_logged_with_the_field_and_another_member_is_still_written(
    world: World,
) -> None:
    refused_id = world.contact_id("M00001")
    # SBC keeps a contact person's name to 50 characters; the registry allows longer names
    world.edit_in_portal(
        "M00001", first_name="Maximiliana-Josephina", last_name="Wolkenstein-Trostburg-Ebersberg"
    )
    world.edit_in_portal("M00004", email="still.written@example.org")
    wait_until(
        lambda: (
            world.contact("M00004")["email"] == "still.written@example.org" and _outbox_empty(world)
        ),
        timeout=10,
        what="the other member written and nothing left waiting",
    )
    [entry] = world.feed("M00001")
    assert entry.outcome == "refused"
    assert "main_contact_person.name is too long" in entry.detail
    assert "Fix: correct the member so that the ledger accepts main_contact_person.name" in (
        entry.detail
    )
    assert world.writes.puts.count(refused_id) == 1  # not tried again
    with world.runtime.db.read() as session:
        [record] = session.scalars(
            select(SyncRecord).where(SyncRecord.member_id == world.member_id("M00001"))
        ).all()
        assert record.status == "failed"
        assert "main_contact_person.name" in record.message


def test_the_sync_page_and_the_api_show_the_live_feed_to_a_viewer(world: World) -> None:
    world.edit_in_portal("M00002", email="feed@example.org")
    wait_until(lambda: world.feed("M00002"), timeout=10, what="the write in the live feed")
    viewer = make_user(world.runtime.db, Role.VIEWER)
    sign_in(world.client, viewer.email)
    page = world.client.get("/sync")
    assert page.status_code == 200
    feed = BeautifulSoup(page.text, "html.parser").select_one("[data-testid=live-feed]")
    assert feed is not None, "no live feed on the Sync page"
    [row] = feed.select("[data-testid=live-write]")
    cells = [td.get_text(" ", strip=True) for td in row.find_all("td")]
    assert cells[0].startswith("M00002")
    assert cells[1].startswith("Member registry → ")
    assert cells[2] == "Written"
    assert cells[5].endswith(" s")
    lag = feed.select_one("[data-testid=live-lag]")
    assert lag is not None
    assert lag.get_text(strip=True).startswith("1 change(s) written in the last hour. Half")
    waiting = feed.select_one("[data-testid=live-waiting]")
    assert waiting is not None
    assert waiting.get_text(strip=True).startswith("Nothing is waiting")
    api = world.client.get("/api/v1/sync/live", headers={"Authorization": f"Bearer {viewer.token}"})
    assert api.status_code == 200, api.text
    body = api.json()
    assert [w["member_number"] for w in body["writes"]] == ["M00002"]
    assert body["writes"][0]["outcome"] == "written"
    assert body["lag_p50_ms"] == body["writes"][0]["lag_ms"]
    assert body["realtime"] == {str(world.connection_id): True}


def test_members_changed_together_are_written_with_one_listing_instead_of_a_read_each(
    world: World,
) -> None:
    numbers = ["M00001", "M00002", "M00003"]

    def edit_together(tag: str) -> None:
        with world.runtime.db.transaction() as session:  # one import touching three members
            for number in numbers:
                member = registry.load_member(session, registry.get_member(session, number))
                changed = replace(member, email=f"{tag}.{number.lower()}@example.org")
                registry.update_member(session, cli_principal(), number, changed)

    def written(tag: str) -> bool:
        return _outbox_empty(world) and all(
            world.contact(n)["email"] == f"{tag}.{n.lower()}@example.org" for n in numbers
        )

    edit_together("first")  # the first write of each: no agreement yet, read one by one
    wait_until(lambda: written("first"), timeout=10, what="the first e-mails on SBC")
    world.writes.reads.clear()
    edit_together("second")
    wait_until(lambda: written("second"), timeout=10, what="the second e-mails on SBC")
    assert world.writes.reads == []  # the contacts came from one listing of recent changes
    assert len(world.writes.puts) == 6


def test_an_administrator_turns_real_time_off_for_a_connection_and_edits_then_wait_for_a_run(
    world: World,
) -> None:
    admin = make_user(world.runtime.db, Role.ADMIN)
    csrf = sign_in(world.client, admin.email)
    page = BeautifulSoup(world.client.get("/sync").text, "html.parser")
    form = page.find("form", id=f"settings_{world.connection_id}")
    assert form is not None
    box = form.find("input", attrs={"name": "realtime"})
    assert box is not None
    assert box.has_attr("checked")  # on by default
    sent: dict[str, list[str]] = {}  # the form as the browser sends it, real-time unticked
    for found in form.find_all(["input", "select"]):
        name = str(found.get("name") or "")
        if name == "realtime" or not name:
            continue
        if found.name == "select":
            chosen = found.find("option", selected=True)
            sent.setdefault(name, []).append(str(chosen.get("value", "")) if chosen else "")
        elif found.get("type") != "checkbox" or found.has_attr("checked"):
            sent.setdefault(name, []).append(str(found.get("value", "")))
    saved = world.client.post("/sync/settings", data=sent, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    world.csrf = csrf
    world.edit_in_portal("M00002", email="later@example.org")
    assert _outbox_empty(world)  # nothing waits: the next run or schedule writes it
    again = BeautifulSoup(world.client.get("/sync").text, "html.parser")
    box = again.find("form", id=f"settings_{world.connection_id}").find(  # type: ignore[union-attr]
        "input", attrs={"name": "realtime"}
    )
    assert not box.has_attr("checked")


def test_a_member_changed_by_a_csv_import_through_the_api_reaches_sbc(world: World) -> None:
    token = make_user(world.runtime.db, Role.OPERATOR, "importer@example.org").token
    headers = {"Authorization": f"Bearer {token}"}
    exported = world.client.get("/api/v1/members/export", headers=headers)
    assert exported.status_code == 200
    old = world.contact("M00003")["email"]
    assert old in exported.text
    changed = exported.text.replace(old, "imported@example.org")
    imported = world.client.post(
        "/api/v1/members/import",
        headers=headers,
        files={"file": ("members.csv", changed.encode(), "text/csv")},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["updated"] == 1
    wait_until(
        lambda: world.contact("M00003")["email"] == "imported@example.org",
        timeout=10,
        what="the imported e-mail on the SBC contact",
    )


def test_a_job_run_on_the_same_database_does_not_stop_edits_enqueuing_their_write(
    world: World,
) -> None:
    """Under `ledgerlink serve` on SQLite the embedded runner runs every job on the web
    process's own database, each job with a runtime of its own (``Runtime.for_job``) that
    is gone when the job ends; the web's edits must still enqueue their write at once,
    not wait for the minutely sweep (seen in the demo: an edit waited up to a minute)."""
    edits = world.runtime
    job = Runtime.for_job(JobContext(job_id=1, attempt=1, settings=edits.settings, db=edits.db))
    del job
    gc.collect()
    with edits.db.transaction() as session:
        member = registry.load_member(session, registry.get_member(session, "M00004"))
        registry.update_member(
            session, cli_principal(), "M00004", replace(member, email="after.a.job@example.org")
        )
        # in the edit's own transaction (a worker's sweep cannot have made it)
        assert _queued_pushes(session) == 1
    wait_until(
        lambda: world.contact("M00004")["email"] == "after.a.job@example.org",
        timeout=10,
        what="the new e-mail on the SBC contact (the minutely sweep would take up to 60 s)",
    )


def _queued_pushes(session: Session) -> int:
    """Real-time write jobs waiting in the job store, whichever back-end keeps it."""
    if session.get_bind().dialect.name == "postgresql":
        query = (
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = :task AND status = 'todo'"
        )
    else:
        query = "SELECT count(*) FROM jobs WHERE task = :task AND status = 'queued'"
    return int(session.execute(text(query), {"task": "sync.realtime_push"}).scalar_one())


def test_a_change_a_sync_reads_from_sbc_is_not_written_back_to_sbc(world: World) -> None:
    """A full run that brings a Sage user's edit into the registry must not then push the
    same member back to the ledger it came from: an echo that spends the connection's
    rate budget and shows a real-time run on the Sync log after every Sync Now."""
    _member_details_run(world)  # both sides agreed: the next run knows which side changed
    contact = world.contact("M00001")
    body = {"email": "in.sage@example.org"}
    edited = world.sbc.put(f"/contacts/{contact['id']}", "contact", body)
    assert edited.status_code == 200, edited.text
    _member_details_run(world)
    with world.runtime.db.read() as session:
        member = registry.get_member(session, "M00001")
        assert member.email == "in.sage@example.org"
    wait_until(lambda: _outbox_empty(world), timeout=10, what="nothing waiting to be written")
    assert world.feed("M00001") == []


def _member_details_run(world: World) -> None:
    with world.runtime.db.transaction() as session:
        run_id = starting.start(
            session, world.runtime.jobs, cli_principal(), world.connection_id, ["member_details"]
        ).id

    def finished() -> bool:
        with world.runtime.db.read() as session:
            run = session.get(SyncRun, run_id)
            return run is not None and run.status == "finished"

    wait_until(finished, timeout=15, what="the member-details run")


def test_an_edit_saved_just_as_the_previous_write_ends_is_written_within_seconds(
    world: World,
) -> None:
    """The queue refuses a second job for a connection while the first still runs, so an
    edit committed after the running job's last look (while it closes its connection and
    is marked done) had no job until the next minute's sweep. Each edit below is saved
    the moment the previous one has left the outbox, which lands it in that window in
    some of the rounds; every one must be written within a few seconds."""

    def edit(address: str) -> None:
        with world.runtime.db.transaction() as session:
            member = registry.load_member(session, registry.get_member(session, "M00001"))
            changed = replace(member, email=address)
            registry.update_member(session, cli_principal(), "M00001", changed)

    edit("round0@example.org")
    for attempt in range(1, 9):
        wait_until(lambda: _outbox_empty(world), timeout=10, interval=0.002, what="an empty outbox")
        address = f"round{attempt}@example.org"
        edit(address)
        wait_until(
            lambda: _outbox_empty(world) and world.contact("M00001")["email"] == address,  # noqa: B023
            timeout=10,
            what=f"round {attempt}'s e-mail on SBC",
        )
