"""Bulk create-and-link: runs as a job, reports progress, and resumes after a crash
without creating a single duplicate."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from ledgerlink.identity.principal import cli_principal
from ledgerlink.jobs.port import job_queue
from ledgerlink.jobs.registry import JobInterrupted
from ledgerlink.members import bulk
from ledgerlink.members.search import MemberQuery, matching_ids
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.member_models import MemberLinkRow
from ledgerlink.store.models import Job
from tests.support.fake_ledger import Crash, FakeLedger
from tests.support.members import add_connection, add_levels, add_member

ME = cli_principal()
FIRST = ["Ada", "Ben", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal", "Ida", "Jo", "Kit", "Lu"]
LAST = [
    "Ames",
    "Bose",
    "Cruz",
    "Dunn",
    "Egan",
    "Ford",
    "Gray",
    "Hunt",
    "Ives",
    "Juno",
    "Kerr",
    "Lamb",
]


@pytest.fixture
def members(db: Database) -> tuple[Database, int]:
    add_levels(db)
    for n, (first, last) in enumerate(zip(FIRST, LAST, strict=True), start=1):
        add_member(db, f"M{n:05d}", first, last, email=f"{first.lower()}@example.org")
    return db, add_connection(db)


def _start(db: Database, connection_id: int, jobs=None) -> int:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        ids = matching_ids(session, MemberQuery(without_account=True, connection_id=connection_id))
        return bulk.start(session, jobs, ME, connection_id, ids, {"without_account": True}).id


def _links(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(MemberLinkRow)) or 0


def test_starting_a_bulk_run_enqueues_one_job_in_the_same_transaction(
    members, settings: Settings
) -> None:
    db, connection_id = members
    jobs = job_queue(settings, db)
    run_id = _start(db, connection_id, jobs)
    with db.read() as session:
        info = bulk.progress(session, run_id)
        assert info["total"] == 12
        assert info["done"] == 0
        assert info["counts"]["pending"] == 12
        if settings.job_backend == "embedded":
            job = session.scalars(select(Job).where(Job.task == bulk.TASK)).one()
            assert job.args == {"run_id": run_id, "actor": ME.actor}


def test_bulk_creates_and_links_every_member_and_reports_each(members) -> None:
    db, connection_id = members
    ledger = FakeLedger()
    run_id = _start(db, connection_id)
    result = asyncio.run(bulk.run(db, run_id, ledger, ME, mappings=MappingRepository(None)))
    assert result["counts"] == {"pending": 0, "created": 12, "linked": 0, "skipped": 0, "failed": 0}
    assert result["status"] == "finished"
    assert result["percent"] == 100
    assert len(ledger.by_id) == 12
    assert _links(db) == 12
    with db.read() as session:
        items = bulk.progress(session, run_id)["items"]
    assert {i["status"] for i in items} == {"created"}
    assert all(i["customer_id"] for i in items)


def test_a_crashed_bulk_run_resumes_without_duplicates(members) -> None:
    db, connection_id = members
    ledger = FakeLedger()
    made: list[str] = []

    def crash_on_the_fifth(customer) -> None:  # type: ignore[no-untyped-def]
        made.append(customer.id)
        if len(made) == 5:
            raise Crash("killed after the ledger created the customer, before we stored it")

    ledger.after_create = crash_on_the_fifth
    run_id = _start(db, connection_id)
    with pytest.raises(Crash):
        asyncio.run(
            bulk.run(db, run_id, ledger, ME, concurrency=1, mappings=MappingRepository(None))
        )
    assert len(ledger.by_id) == 5
    assert _links(db) == 4

    ledger.after_create = None
    result = asyncio.run(
        bulk.run(db, run_id, ledger, ME, concurrency=3, mappings=MappingRepository(None))
    )
    assert result["counts"]["pending"] == 0
    assert result["counts"]["failed"] == 0
    assert len(ledger.by_id) == 12, "no customer may be created twice"
    assert _links(db) == 12
    numbers = [c.number for c in ledger.by_id.values()]
    assert len(set(numbers)) == 12


def test_a_bulk_run_hands_back_when_its_runner_stops_and_the_next_run_finishes(
    members,
) -> None:  # type: ignore[no-untyped-def]
    db, connection_id = members
    ledger = FakeLedger()
    run_id = _start(db, connection_id)
    stop_after_four = lambda: len(ledger.by_id) >= 4  # noqa: E731 - the runner's stop flag
    with pytest.raises(JobInterrupted):
        asyncio.run(
            bulk.run(
                db,
                run_id,
                ledger,
                ME,
                concurrency=1,
                should_stop=stop_after_four,
                mappings=MappingRepository(None),
            )
        )
    with db.read() as session:
        halfway = bulk.progress(session, run_id)
    assert halfway["counts"]["created"] == 4
    assert halfway["counts"]["pending"] == 8
    assert halfway["status"] == "running"  # not finished: the job runs again
    result = asyncio.run(bulk.run(db, run_id, ledger, ME, mappings=MappingRepository(None)))
    assert result["status"] == "finished"
    assert result["counts"]["created"] == 12
    assert len(ledger.by_id) == 12


def test_likely_duplicates_are_skipped_with_the_reason_and_failures_listed(members) -> None:
    db, connection_id = members
    ledger = FakeLedger()
    ledger.add("OLD-1", "Someone", "ada@example.org")  # same e-mail as M00001
    ledger.reject_names.add("Ben Bose")
    run_id = _start(db, connection_id)
    result = asyncio.run(bulk.run(db, run_id, ledger, ME, mappings=MappingRepository(None)))
    assert result["counts"]["skipped"] == 1
    assert result["counts"]["failed"] == 1
    with db.read() as session:
        items = bulk.progress(session, run_id)["items"]
    assert items[0]["status"] == "failed"
    assert "name can't be blank" in items[0]["message"]
    assert items[1]["status"] == "skipped"
    assert "same e-mail" in items[1]["message"]

    ledger.reject_names.clear()
    with db.transaction() as session:
        bulk.retry_failed(session, None, ME, run_id)
    result = asyncio.run(bulk.run(db, run_id, ledger, ME, mappings=MappingRepository(None)))
    assert result["counts"]["failed"] == 0
    assert result["counts"]["created"] == 11


def test_the_job_task_is_registered() -> None:
    from ledgerlink.jobs.registry import tasks

    assert tasks.get(bulk.TASK) is not None
