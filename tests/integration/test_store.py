"""The store works the same on both back-ends."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from ledgerlink.store.db import Database
from ledgerlink.store.migrate import pending_revisions
from ledgerlink.store.models import User


def test_migrated_database_has_no_pending_revisions(db: Database) -> None:
    assert pending_revisions(db) == []


def test_a_failed_transaction_leaves_nothing_behind(db: Database) -> None:
    try:
        with db.transaction() as session:
            session.add(
                User(email="a@example.org", display_name="A", role="admin", password_hash="x")
            )
            session.flush()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0


def test_concurrent_read_then_write_transactions_all_commit(db: Database) -> None:
    """Each writer reads the count then inserts; none may fail with a lock error."""
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                with db.transaction() as session:
                    session.scalar(select(func.count()).select_from(User))
                    session.add(
                        User(
                            email=f"u{n}-{i}@example.org",
                            display_name="U",
                            role="viewer",
                            password_hash="x",
                        )
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 40
