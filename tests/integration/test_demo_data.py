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


def test_demo_members_are_the_people_the_simulators_hold(db) -> None:  # type: ignore[no-untyped-def]
    from ledgerlink.members.registry import get_member, load_member
    from ledgerlink.sandbox.people import population
    from ledgerlink.store.member_models import MemberRow

    with db.transaction() as session:
        assert demo.ensure_members(session, count=30) == 30
    with db.transaction() as session:
        assert demo.ensure_members(session, count=30) == 0  # a second demo start adds nothing
    person = population(30)[6]
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(MemberRow)) == 30
        member = load_member(session, get_member(session, person.member_number))
    assert (member.first_name, member.last_name, member.email) == (
        person.first_name,
        person.last_name,
        person.email,
    )
    assert member.level_code == person.membership_type.lower()


def test_the_demo_links_its_members_to_the_sbc_sandbox_once(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ledgerlink.runtime import Runtime
    from ledgerlink.sandbox.sbc import SbcConfig
    from ledgerlink.store.member_models import BulkLinkItem, BulkLinkRun
    from ledgerlink.store.migrate import upgrade
    from tests.support.sbc import connect_ledgerlink, running_sbc

    runtime = Runtime(settings)
    upgrade(runtime.db)
    with runtime.db.transaction() as session:
        demo.ensure_members(session, count=20)
    with running_sbc(tmp_path / "sbc", SbcConfig(rate_limit_per_minute=0, seed_people=20)) as (
        base,
        _,
    ):
        connect_ledgerlink(runtime, base)
        note = demo.link_demo_members(runtime)
        assert note is not None
        assert "20 demo members" in note
        assert demo.link_demo_members(runtime) is None  # not twice
    with runtime.db.read() as session:
        run = session.scalars(select(BulkLinkRun)).one()
        assert run.total == 20
        assert session.scalar(select(func.count()).select_from(BulkLinkItem)) == 20
    runtime.db.dispose()
