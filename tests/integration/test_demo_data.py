"""`make demo` prepares sign-in accounts that work, and preparing twice changes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from ledgerlink import demo
from ledgerlink.store.models import User
from tests.support.web import sign_in


def test_demo_accounts_are_created_once_and_can_sign_in(client, db) -> None:  # type: ignore[no-untyped-def]
    for _ in range(2):
        with db.transaction() as session:
            demo.ensure_users(session)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(User)) == len(demo.USERS)
    email = demo.USERS[0][0]
    sign_in(client, email, demo.PASSWORD)
    assert client.get("/").status_code == 200
