"""The audit chain against real databases: appending, concurrency, and tampering done the
way an intruder would, with raw SQL behind ledgerlink's back."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text

from ledgerlink.store import audit
from ledgerlink.store.db import Database
from ledgerlink.store.models import AuditEntry, AuditHead, User


def append(db: Database, count: int, *, start: int = 1) -> None:
    with db.transaction() as session:
        for n in range(start, start + count):
            audit.record(
                session,
                actor="alice@example.org",
                action="connection.updated",
                entity_type="connection",
                entity_id=n,
                before={"name": f"Sage {n}", "is_active": False},
                after={"name": f"Sage {n}", "is_active": True},
            )


def tamper(db: Database, *statements: str, **params: Any) -> None:
    """Change the database directly, as someone with write access to it could."""
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), params)


def json_param(db: Database, name: str) -> str:
    return f"CAST(:{name} AS JSONB)" if db.backend == "postgresql" else f":{name}"


def head_hash(db: Database) -> str:
    with db.read() as session:
        return str(session.scalar(select(AuditHead.hash)))


def entry_hash(db: Database, seq: int) -> str:
    with db.read() as session:
        return str(session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == seq)))


def test_an_empty_chain_verifies(db: Database) -> None:
    report = audit.verify_all(db)
    assert report.ok
    assert report.entries == 0
    assert report.head_hash == audit.GENESIS_HASH


def test_appended_entries_form_a_chain_that_verifies(db: Database) -> None:
    append(db, 10)
    report = audit.verify_all(db)
    assert report.ok, report.problem
    assert report.entries == 10
    assert report.head_hash == head_hash(db) == entry_hash(db, 10)
    assert report.first_bad_seq is None


def test_entries_are_written_in_the_callers_transaction(db: Database) -> None:
    with db.transaction() as session:
        user = User(email="a@example.org", display_name="A", role="viewer", password_hash="x")
        session.add(user)
        session.flush()
        entry = audit.record(
            session, actor="cli:root", action="user.created", entity_type="user", entity_id=user.id
        )
        assert entry.seq == 1
    with db.read() as session:
        stored = session.get(AuditEntry, 1)
        assert stored is not None
        assert stored.entity_id == str(user.id)
        assert stored.prev_hash == audit.GENESIS_HASH


def test_a_rolled_back_entry_leaves_no_trace_and_no_gap(db: Database) -> None:
    append(db, 2)

    def change_that_fails() -> None:
        with db.transaction() as session:
            audit.record(session, actor="a", action="x.failed", entity_type="t", entity_id=None)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        change_that_fails()
    append(db, 1, start=3)
    with db.read() as session:
        assert list(session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq))) == [1, 2, 3]
        assert session.scalar(select(AuditEntry).where(AuditEntry.action == "x.failed")) is None
    assert audit.verify_all(db).ok


def test_concurrent_appenders_produce_one_unbroken_chain(db: Database) -> None:
    threads_n, per_thread = 8, 15
    errors: list[BaseException] = []

    def appender(worker: int) -> None:
        try:
            for i in range(per_thread):
                with db.transaction() as session:
                    audit.record(
                        session,
                        actor=f"worker-{worker}",
                        action="payment.posted",
                        entity_type="payment",
                        entity_id=f"{worker}-{i}",
                        after={"amount_minor": 1000 + i, "currency": "USD"},
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    total = threads_n * per_thread
    with db.read() as session:
        seqs = list(session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
        ids = set(session.scalars(select(AuditEntry.entity_id)))
    assert seqs == list(range(1, total + 1))
    assert len(ids) == total
    report = audit.verify_all(db)
    assert report.ok, report.problem
    assert report.entries == total


def test_values_hash_the_same_after_a_trip_through_the_database(db: Database) -> None:
    with db.transaction() as session:
        audit.record(
            session,
            actor="ops@example.org",
            action="mapping.changed",
            entity_type="mapping",
            entity_id="gl-accounts",
            before={"when": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "rate": 1e16},
            after={
                "note": "Zürich — 東京 ✓",
                "big": 2**62,
                "fraction": 0.30000000000000004,
                "zero": -0.0,
                "nested": [{"b": 2, "a": (1, None, True)}],
            },
        )
    report = audit.verify_all(db)
    assert report.ok, report.problem


def test_well_known_secret_fields_are_never_stored(db: Database) -> None:
    with db.transaction() as session:
        audit.record(
            session,
            actor="a",
            action="connection.updated",
            entity_type="connection",
            entity_id=1,
            after={"username": "api", "password": "hunter2", "nested": {"client_secret": "cs"}},
        )
    with db.engine.connect() as conn:
        raw = conn.execute(text("SELECT CAST(after AS TEXT) FROM audit_log")).scalar_one()
    assert "hunter2" not in raw
    assert '"cs"' not in raw.replace(" ", "")
    assert json.loads(raw)["password"] == audit.REDACTED
    assert audit.verify_all(db).ok


# ---- tampering --------------------------------------------------------------------------


def test_an_edited_entry_is_named(db: Database) -> None:
    append(db, 8)
    tamper(
        db,
        f"UPDATE audit_log SET after = {json_param(db, 'doc')} WHERE seq = 3",
        doc=json.dumps({"name": "Sage 3", "is_active": False}),
    )
    report = audit.verify_all(db)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.entries == 2
    assert report.problem is not None
    assert "entry 3" in report.problem
    assert "edited" in report.problem
    assert "Restore the database from a backup taken before" in report.problem
    assert "investigate who had write access" in report.problem


def test_an_edited_actor_is_named(db: Database) -> None:
    append(db, 4)
    tamper(db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    report = audit.verify_all(db)
    assert (report.ok, report.first_bad_seq) == (False, 2)


def test_an_entry_rewritten_with_a_recomputed_hash_is_named(db: Database) -> None:
    """The intruder edits entry 3 and fixes up its hash; entry 4 still links to the old."""
    append(db, 6)
    with db.read() as session:
        row = session.get(AuditEntry, 3)
        assert row is not None
        forged_after = {"name": "Sage 3", "is_active": False}
        forged = audit.chain_hash(
            row.prev_hash,
            seq=3,
            at=row.at,
            actor=row.actor,
            action=row.action,
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            before=row.before,
            after=forged_after,
        )
    tamper(
        db,
        f"UPDATE audit_log SET after = {json_param(db, 'doc')}, hash = :h WHERE seq = 3",
        doc=json.dumps(forged_after),
        h=forged,
    )
    report = audit.verify_all(db)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.problem is not None
    assert "entry 3 was changed and its hash recomputed" in report.problem


def test_deleted_entries_are_named(db: Database) -> None:
    append(db, 9)
    tamper(db, "DELETE FROM audit_log WHERE seq IN (5, 6)")
    report = audit.verify_all(db)
    assert not report.ok
    assert report.first_bad_seq == 5
    assert report.entries == 4
    assert report.problem is not None
    assert "entries 5\u20136 are missing (deleted)" in report.problem


def test_a_single_deleted_entry_is_named(db: Database) -> None:
    append(db, 5)
    tamper(db, "DELETE FROM audit_log WHERE seq = 1")
    report = audit.verify_all(db)
    assert report.first_bad_seq == 1
    assert report.problem is not None
    assert "entry 1 is missing (deleted)" in report.problem
    assert "newest backup on which `ledgerlink audit verify` passes" in report.problem


def test_reordered_entries_are_named(db: Database) -> None:
    append(db, 6)
    tamper(
        db,
        "UPDATE audit_log SET seq = -4 WHERE seq = 4",
        "UPDATE audit_log SET seq = 4 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = -4",
    )
    report = audit.verify_all(db)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.problem is not None
    assert "entry 3 links to entry 4 instead of entry 2" in report.problem
    assert "reordered" in report.problem


def test_swapped_hashes_are_named_as_reordered(db: Database) -> None:
    """Exchanging two entries' links and hashes instead of their sequence numbers."""
    append(db, 5)
    with db.read() as session:
        rows = {e.seq: (e.prev_hash, e.hash) for e in session.scalars(select(AuditEntry))}
    (p2, h2), (p3, h3) = rows[2], rows[3]
    tamper(
        db,
        "UPDATE audit_log SET hash = :tmp WHERE seq = 2",
        "UPDATE audit_log SET prev_hash = :p2, hash = :h2 WHERE seq = 3",
        "UPDATE audit_log SET prev_hash = :p3, hash = :h3 WHERE seq = 2",
        tmp="f" * 64,
        p2=p2,
        h2=h2,
        p3=p3,
        h3=h3,
    )
    report = audit.verify_all(db)
    assert not report.ok
    assert report.first_bad_seq == 2
    assert report.problem is not None
    assert "entry 2 links to entry 3 instead of entry 1" in report.problem


def test_a_deleted_tail_is_named(db: Database) -> None:
    append(db, 10)
    tamper(db, "DELETE FROM audit_log WHERE seq > 8")
    report = audit.verify_all(db)
    assert not report.ok
    assert report.first_bad_seq == 9
    assert report.entries == 8
    assert report.problem is not None
    assert "the last 2 entries were deleted" in report.problem


def test_a_tail_cut_off_with_the_head_fixed_up_is_caught_by_the_recorded_head(
    db: Database,
) -> None:
    append(db, 10)
    recorded = audit.verify_all(db).head_hash
    tamper(
        db,
        "DELETE FROM audit_log WHERE seq > 7",
        "UPDATE audit_head SET seq = 7, hash = :h WHERE id = 1",
        h=entry_hash(db, 7),
    )
    assert audit.verify_all(db).ok  # the chain alone cannot tell
    with db.read() as session:
        report = audit.verify(session, expect_head=recorded)
    assert not report.ok
    assert report.problem is not None
    assert "no longer in the chain" in report.problem


def test_a_recorded_head_from_earlier_still_verifies_after_the_chain_grows(db: Database) -> None:
    append(db, 3)
    recorded = audit.verify_all(db).head_hash
    append(db, 3, start=4)
    with db.read() as session:
        assert audit.verify(session, expect_head=recorded.upper()).ok
        assert audit.verify(session, expect_head=audit.GENESIS_HASH).ok


def test_a_malformed_expected_head_is_refused(db: Database) -> None:
    with db.read() as session, pytest.raises(ValueError, match="64 hexadecimal"):
        audit.verify(session, expect_head="abc")


def test_the_walk_streams_past_one_batch(db: Database) -> None:
    with db.transaction() as session:
        for n in range(1, 1206):
            audit.record(
                session,
                actor="bulk",
                action="member.linked",
                entity_type="member",
                entity_id=n,
                after={"n": n},
            )
    tamper(db, "UPDATE audit_log SET entity_id = 'x' WHERE seq = 1100")
    report = audit.verify_all(db)
    assert (report.ok, report.first_bad_seq, report.entries) == (False, 1100, 1099)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 1205


def test_the_daily_verification_job_fails_loudly_on_a_tampered_chain(
    db: Database, settings
) -> None:  # type: ignore[no-untyped-def]
    from ledgerlink.audit_jobs import AuditChainBroken, verify_audit_chain
    from ledgerlink.jobs.registry import JobContext, tasks

    assert any(s.task == "audit.verify" and s.args == {"full": True} for s in tasks.schedules())
    append(db, 4)
    context = JobContext(job_id=1, attempt=1, settings=settings, db=db)
    verify_audit_chain(context, full=True)  # an intact chain passes quietly
    tamper(db, "DELETE FROM audit_log WHERE seq = 2")
    with pytest.raises(AuditChainBroken, match="entry 2"):
        verify_audit_chain(context, full=True)
