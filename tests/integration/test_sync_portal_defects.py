"""What the Sync pages say about a run agrees with what the run did (issue 19): failed
records make the run "finished with N failed records" with a working Retry, a data set
that cannot run says which page and setting fix it, a first sync does not call a
difference a conflict, and records link only to pages that exist. Against the SBC and
PayTrace simulators, over real HTTP, through the portal."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ledgerlink.domain.accounts import CustomerDraft
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.members import registry
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import SyncRecord, SyncRun, SyncSchedule, SyncSettings
from ledgerlink.sync import runs
from tests.support.members import add_connection
from tests.support.payments import PaymentsWorld, sbc_world
from tests.support.web import csrf_token, make_user, sign_in

ME = cli_principal()


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[PaymentsWorld]:
    with sbc_world(settings, tmp_path, people=4) as made:
        yield made


def _sync(world: PaymentsWorld, data_sets: list[str]) -> SyncRun:
    with world.runtime.db.transaction() as session:
        run_id = runs.start(session, None, ME, world.ledger_id, data_sets).id
    return _execute(world, run_id)


def _execute(world: PaymentsWorld, run_id: int) -> SyncRun:
    """What the run's job does: execute it with everything from the composition root."""
    run = asyncio.run(runs.execute_for(world.runtime, run_id, ME))
    assert run is not None
    return run


def _records(db: Database, run_id: int) -> list[SyncRecord]:
    with db.read() as session:
        found = list(
            session.scalars(
                select(SyncRecord).where(SyncRecord.run_id == run_id).order_by(SyncRecord.id)
            )
        )
        for record in found:
            session.expunge(record)
        return found


def _post_payments_to(db: Database, gateway_id: int, ledger_id: int) -> None:
    with db.transaction() as session:
        gateway = session.get(Connection, gateway_id)
        assert gateway is not None
        gateway.settings = {**gateway.settings, "post_to_connection_id": ledger_id}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_card_profiles_on_a_ledger_no_paytrace_posts_to_say_which_page_and_setting_fix_it(
    world: PaymentsWorld,
) -> None:
    db = world.runtime.db
    elsewhere = add_connection(db, "Sage 500 books", "sage500")
    _post_payments_to(db, world.paytrace_id, elsewhere)  # card payments go to another ledger
    run = _sync(world, ["card_profiles"])
    [failed] = _records(db, run.id)
    assert failed.status == "failed"
    # where card payments go now, and where that is changed: page, connection, setting
    assert "PayTrace posts to Sage 500 books" in failed.message
    assert f"Accounting Integration → PayTrace (/connections/{world.paytrace_id})" in failed.fix
    assert "Post payments to: Sage Business Cloud (sandbox)" in failed.fix
    assert "Sync settings" in failed.fix  # or stop syncing the data set for this ledger


def test_a_run_with_a_failed_record_says_so_offers_retry_and_the_retry_works(
    world: PaymentsWorld, client: TestClient
) -> None:
    db = world.runtime.db
    elsewhere = add_connection(db, "Sage 500 books", "sage500")
    _post_payments_to(db, world.paytrace_id, elsewhere)  # the profiles cannot be synced
    run = _sync(world, ["card_profiles"])
    assert [r.status for r in _records(db, run.id)] == ["failed"]

    operator = make_user(db, Role.OPERATOR)
    csrf = sign_in(client, operator.email)
    page = client.get(f"/sync/runs/{run.id}")
    status = re.search(
        r'<span data-testid="sync-status"[^>]*class="([^"]*)"[^>]*>([^<]*)<', page.text
    )
    assert status is not None
    assert status.group(2) == "finished with 1 failed record"
    assert "warn" in status.group(1)
    assert 'data-field="errors">1<' in page.text
    assert "Retry failed records" in page.text
    assert 'href="/members/-"' not in page.text  # the data set's row links to no member
    api = client.get(
        f"/api/v1/sync/runs/{run.id}", headers={"Authorization": f"Bearer {operator.token}"}
    ).json()
    assert (api["progress"]["errors"], api["failed_records"]) == (1, 1)
    log = client.get("/sync").text
    assert "finished with 1 failed record" in log

    _post_payments_to(db, world.paytrace_id, world.ledger_id)  # what the message said to do
    retried = client.post(
        f"/sync/runs/{run.id}/retry", data={"csrftoken": csrf}, follow_redirects=False
    )
    assert retried.status_code == 303
    retry_id = int(retried.headers["location"].rsplit("/", 1)[1])
    again = _execute(world, retry_id)
    assert (again.status, again.source_run_id, again.data_sets) == (
        "finished",
        run.id,
        ["card_profiles"],
    )
    assert [r for r in _records(db, retry_id) if r.status == "failed"] == []
    assert ">finished<" in client.get(f"/sync/runs/{retry_id}").text


def test_only_an_operator_retries_and_only_what_failed(
    world: PaymentsWorld, client: TestClient
) -> None:
    db = world.runtime.db
    clean = _sync(world, ["member_details"])
    assert clean.counts.get("failed", 0) == 0
    viewer = make_user(db, Role.VIEWER)
    csrf = sign_in(client, viewer.email)
    assert "Retry failed records" not in client.get(f"/sync/runs/{clean.id}").text
    refused = client.post(f"/sync/runs/{clean.id}/retry", data={"csrftoken": csrf})
    assert refused.status_code == 403
    operator = make_user(db, Role.OPERATOR)
    nothing = client.post(
        f"/api/v1/sync/runs/{clean.id}/retry",
        headers={"Authorization": f"Bearer {operator.token}"},
    )
    assert nothing.status_code == 409
    assert "no failed records" in nothing.json()["detail"]


def test_a_first_sync_calls_a_difference_a_first_sync_difference_not_a_conflict(
    world: PaymentsWorld, client: TestClient
) -> None:
    db = world.runtime.db
    with db.transaction() as session:  # only the registry changed since the link was made
        current = registry.load_member(session, registry.get_member(session, "M00002"))
        registry.update_member(
            session, ME, "M00002", replace(current, email="registry.only@example.org")
        )
    run = _sync(world, ["member_details"])
    [record] = [r for r in _records(db, run.id) if r.record_key == "M00002"]
    assert record.action == "update"
    assert record.direction == "to_ledger"
    assert "conflict" not in record.changes["email"]
    assert record.changes["email"]["first_sync"]["winner"] == "registry"
    assert run.counts.get("conflicts", 0) == 0
    assert "conflict" not in record.message
    sign_in(client, make_user(db, Role.VIEWER).email)
    page = _text(client.get(f"/sync/runs/{run.id}").text)
    assert "differed at first sync: member registry value kept" in page
    assert "conflict" not in page.lower()


def test_a_profile_record_shows_its_customer_id_without_a_link_to_a_member_page(
    client: TestClient, db: Database
) -> None:
    connection_id = add_connection(db)
    with db.transaction() as session:
        run = runs.start(session, None, ME, connection_id, ["card_profiles"])
        run.status = "finished"
        session.add(
            SyncRecord(
                run_id=run.id,
                data_set="card_profiles",
                record_key="C00042",
                member_id=None,
                direction="to_ledger",
                action="update",
                status="done",
                changes={"email": {"before": "a@example.org", "after": "b@example.org"}},
                message="PayTrace profile C00042 ↔ C00042 Ada Ledger",
            )
        )
        run_id = run.id
    sign_in(client, make_user(db, Role.VIEWER).email)
    page = client.get(f"/sync/runs/{run_id}")
    assert page.status_code == 200
    assert "C00042" in page.text
    assert 'href="/members/C00042"' not in page.text
    assert client.get("/members/C00042").status_code == 404  # what the link used to open
    csrf_token(client)


def test_a_bad_cron_is_shown_beside_the_field_and_what_was_typed_stays(
    client: TestClient, db: Database
) -> None:
    connection_id = add_connection(db)
    csrf = sign_in(client, make_user(db, Role.ADMIN).email)
    sent = client.post(
        "/sync/schedules",
        data={
            "csrftoken": csrf,
            "connection_id": connection_id,
            "kind": "cron",
            "cron": "every weekday at 2",
            "timezone": "Europe/London",
        },
    )
    assert sent.status_code == 422
    assert "Something went wrong" not in sent.text
    assert "Sync Now" in sent.text  # the Sync page itself, not a dead end
    field = re.search(rf'<input id="cron_{connection_id}"[^>]*>', sent.text)
    assert field is not None
    assert 'value="every weekday at 2"' in field.group(0)
    assert f'aria-describedby="cron_{connection_id}-error"' in field.group(0)
    error = re.search(rf'<p [^>]*id="cron_{connection_id}-error"[^>]*>([^<]*)</p>', sent.text)
    assert error is not None
    assert "is not a cron expression" in error.group(1)
    assert "30 2 * * 1-5" in error.group(1)
    assert 'value="Europe/London"' in sent.text  # the other fields keep what was typed too
    assert re.search(r'<option value="cron" selected>', sent.text)
    with db.read() as session:
        assert session.scalars(select(SyncSchedule)).all() == []


def test_a_run_has_a_total_from_the_moment_it_is_started(
    world: PaymentsWorld, client: TestClient
) -> None:
    db = world.runtime.db
    operator = make_user(db, Role.OPERATOR)
    started = client.post(
        "/api/v1/sync/runs",
        headers={"Authorization": f"Bearer {operator.token}"},
        json={"connection_id": world.ledger_id},  # every data set the settings choose
    )
    assert started.status_code == 202, started.text
    progress = started.json()["progress"]
    # before anything was read from the ledger: estimated from the linked members
    assert progress["total"] >= 4
    assert (progress["done"], progress["percent"]) == (0, 0)


def test_the_bar_moves_page_by_page_through_every_data_set(world: PaymentsWorld) -> None:
    db = world.runtime.db
    with db.transaction() as session:
        run_id = runs.start(
            session, None, ME, world.ledger_id, ["member_details", "transactions", "balances"]
        ).id
    seen: list[tuple[str, int, int]] = []

    def moved(progress: runs.Progress) -> None:
        with db.read() as session:  # what the portal reads: the run's stored progress
            stored = session.get(SyncRun, run_id)
            assert stored is not None
            seen.append((progress.data_set, stored.done, stored.total))

    async def go() -> SyncRun:
        async with world.ledger() as ledger:
            return await runs.execute(
                db, run_id, ledger, ME, moved, page_size=2, mappings=world.runtime.mappings
            )

    run = asyncio.run(go())
    assert run.status == "finished"
    assert all(total > 0 for _, _, total in seen)
    after_first_page = next(done for data_set, done, _ in seen if done)
    assert 0 < after_first_page < run.total
    assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen)
    for data_set in ("member_details", "transactions", "balances"):
        done = [d for name, d, _ in seen if name == data_set]
        assert len(set(done)) > 1, f"{data_set} moved the bar only once: {seen}"
    assert seen[-1][1:] == (run.done, run.total)
    assert run.done == run.total > 0


def _set_ledger_phone(world: PaymentsWorld, number: str, phone: str) -> None:
    """A Sage user types a phone into the contact (through the ledger's own API)."""

    async def edit() -> None:
        async with world.ledger() as ledger:
            customer = await ledger.find_customer(number)
            assert customer is not None
            draft = CustomerDraft(
                number=customer.number,
                name=customer.name,
                email=customer.email,
                phone=phone,
                address=customer.address,
                currency=customer.currency,
            )
            await ledger.update_customer(customer.id, draft)

    asyncio.run(edit())


def test_a_member_the_registry_refused_is_retried_from_the_run_page(
    world: PaymentsWorld, client: TestClient
) -> None:
    db = world.runtime.db
    assert _sync(world, ["member_details"]).status == "finished"
    _set_ledger_phone(world, "M00002", "call the office")
    run = _sync(world, ["member_details"])
    [failed] = _records(db, run.id)
    assert (failed.record_key, failed.status) == ("M00002", "failed")
    csrf = sign_in(client, make_user(db, Role.OPERATOR).email)
    page = client.get(f"/sync/runs/{run.id}").text
    assert "finished with 1 failed record" in page
    assert '<a href="/members/M00002">M00002</a>' in page  # a member's record opens the member
    _set_ledger_phone(world, "M00002", "+1 503 555 0100")  # the fix the record gave
    retried = client.post(
        f"/sync/runs/{run.id}/retry", data={"csrftoken": csrf}, follow_redirects=False
    )
    assert retried.status_code == 303
    again = _execute(world, int(retried.headers["location"].rsplit("/", 1)[1]))
    assert again.status == "finished"
    assert again.counts.get("updated") == 1
    assert again.total == again.done == 1  # only the member that failed
    with db.read() as session:
        assert registry.load_member(session, registry.get_member(session, "M00002")).phone == (
            "+15035550100"
        )


def test_refused_sync_settings_are_shown_beside_the_field_with_the_choices_kept(
    client: TestClient, db: Database
) -> None:
    connection_id = add_connection(db)
    csrf = sign_in(client, make_user(db, Role.ADMIN).email)
    sent = client.post(
        "/sync/settings",
        data={
            "csrftoken": csrf,
            "connection_id": connection_id,
            "data_sets": ["member_details", "balances"],
            "policy_email": "ledger_wins",
            "overlap_seconds": "999999",
        },
    )
    assert sent.status_code == 422
    assert "Something went wrong" not in sent.text
    field = re.search(rf'<input id="overlap_{connection_id}"[^>]*>', sent.text)
    assert field is not None
    assert 'value="999999"' in field.group(0)
    error = re.search(rf'id="overlap_{connection_id}-error"[^>]*>([^<]*)<', sent.text)
    assert error is not None
    assert "0 to 86400 seconds" in error.group(1)
    # the data sets and policies chosen are still chosen
    assert re.search(r'value="balances" checked', sent.text)
    assert not re.search(r'value="transactions" checked', sent.text)
    assert re.search(
        r'name="policy_email"[^>]*>\s*(<option[^>]*>[^<]*</option>)*?'
        r'<option value="ledger_wins" selected>',
        sent.text,
    )
    with db.read() as session:  # nothing was saved
        stored = session.get(SyncSettings, connection_id)
        assert stored is None or stored.overlap_seconds == 300


def test_sync_now_while_a_run_is_going_says_so_on_the_sync_page(
    client: TestClient, db: Database
) -> None:
    connection_id = add_connection(db)
    csrf = sign_in(client, make_user(db, Role.OPERATOR).email)
    form = {"csrftoken": csrf, "connection_id": connection_id}
    first = client.post("/sync/run", data=form, follow_redirects=False)
    assert first.status_code == 303
    again = client.post("/sync/run", data=form, follow_redirects=False)
    assert again.status_code == 409
    assert "Sync Now" in again.text  # the Sync page, with why nothing started
    problem = re.search(r'data-testid="sync-problem">([^<]*)<', again.text)
    assert problem is not None
    assert "still queued; wait for it or cancel it first" in problem.group(1)
