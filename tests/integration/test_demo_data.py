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


def test_the_demo_posts_its_first_card_payments_to_the_sage_500_sandbox(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from ledgerlink.payments.jobs import drain
    from ledgerlink.runtime import Runtime
    from ledgerlink.sandbox.paytrace import PayTraceConfig
    from ledgerlink.sandbox.paytrace import create_app as paytrace_app
    from ledgerlink.sandbox.supervisor import SimulatorAddress
    from ledgerlink.store.migrate import upgrade
    from ledgerlink.store.payment_models import PaymentEvent, PaymentException
    from tests.support.asgi_server import serve_in_thread
    from tests.support.payments import running_erp

    runtime = Runtime(settings)
    upgrade(runtime.db)
    settings.sandbox_dir.mkdir(parents=True, exist_ok=True)
    with running_erp(settings.sandbox_sage500_url, 30):
        app = paytrace_app(tmp_path / "pt", config=PayTraceConfig(seed_people=30))
        with serve_in_thread(app) as base:
            where = {
                "paytrace": SimulatorAddress("paytrace", base),
                "sage500": SimulatorAddress("sage500", "http://127.0.0.1:9"),
            }
            with runtime.db.transaction() as session:
                demo.ensure_connections(runtime, session, demo.sandbox_connections(runtime, where))
            note = demo.wire_payments(runtime, where)
            assert note is not None
            assert "Made 5 demo card payments" in note
            assert demo.wire_payments(runtime, where) is None  # once
            asyncio.run(drain(runtime, idle_seconds=0))
            reconciled = demo.reconcile_demo(runtime, where)
            assert reconciled is not None
            assert "3 breaks to resolve" in reconciled
            assert demo.reconcile_demo(runtime, where) is None  # once
    with runtime.db.read() as session:
        statuses = sorted(session.scalars(select(PaymentEvent.status)))
        reasons = sorted(session.scalars(select(PaymentException.reason_code)))
    assert statuses == ["exception", "exception", "posted", "posted", "posted"]
    assert reasons == ["declined", "invoice_not_found"]
    _assert_the_demo_has_breaks_to_resolve(runtime)
    runtime.db.dispose()


def _assert_the_demo_has_breaks_to_resolve(runtime) -> None:  # type: ignore[no-untyped-def]
    """The Reconciliation page shows the $75.00 sale posted to no invoice (approved, not in
    the ledger), the new batch's deposit short by a fee, and a credit nobody explains; the
    sandbox's seeded history is explained, with the reason."""
    from ledgerlink.store.recon_models import ReconBreak

    with runtime.db.read() as session:
        rows = session.scalars(select(ReconBreak)).all()
        open_ = sorted((r.type, r.amount_minor) for r in rows if r.status == "open")
        explained = {r.reason for r in rows if r.status == "explained"}
    assert open_ == [
        ("deposit_mismatch", demo.DEMO_FEE_DIFFERENCE),
        ("missing_receipt", 7500),
        ("unknown_credit", demo.DEMO_UNKNOWN_CREDIT),
    ]
    assert explained == {demo.DEMO_HISTORY_REASON}
