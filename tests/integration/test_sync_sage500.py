"""Member details and balances synchronised with the Sage 500 simulator: registry changes go
through the staging table and the ERP's import, ERP changes come back by UpdateDate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from ledgerlink import demo
from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.connectors.factory import ledger_for
from ledgerlink.connectors.sage500.tables import StgCustomer, tarCustomer, tciContact
from ledgerlink.domain.members import AccountType
from ledgerlink.identity.principal import cli_principal
from ledgerlink.members import registry
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import Connection
from ledgerlink.store.sync_models import MemberBalance, SyncRun
from ledgerlink.sync import runs
from tests.support.payments import add_sage500_connection, running_erp
from tests.support.skewed_clock import SkewedClock

ME = cli_principal()
PEOPLE = 12


@pytest.fixture
def erp(settings: Settings, tmp_path: Path) -> Iterator[tuple[Runtime, int, object]]:
    with _erp(settings, tmp_path, SYSTEM_CLOCK) as found:
        yield found


#: How far the ERP server's clock is behind ours in ``erp_behind``.
BEHIND = timedelta(hours=3)


@pytest.fixture
def erp_behind(settings: Settings, tmp_path: Path) -> Iterator[tuple[Runtime, int, object]]:
    """The ERP server's clock three hours behind ours (it stamps UpdateDate with it)."""
    with _erp(settings, tmp_path, SkewedClock(-BEHIND)) as found:
        yield found


@contextmanager
def _erp(settings: Settings, tmp_path: Path, clock: Clock) -> Iterator[tuple[Runtime, int, object]]:
    from ledgerlink.store.migrate import upgrade

    runtime = Runtime(settings)
    upgrade(runtime.db)
    url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    with running_erp(url, PEOPLE, clock) as engine:
        with runtime.db.transaction() as session:
            demo.ensure_members(session, count=PEOPLE)
            connection_id = add_sage500_connection(runtime, session, url).id
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
        yield runtime, connection_id, engine
    runtime.db.dispose()


def _sync(runtime: Runtime, connection_id: int, data_sets: list[str]) -> SyncRun:
    with runtime.db.transaction() as session:
        run_id = runs.start(session, None, ME, connection_id, data_sets).id
        connection = session.get(Connection, connection_id)
        session.expunge(connection)

    async def go() -> SyncRun:
        async with ledger_for(runtime, connection) as ledger:  # type: ignore[arg-type, attr-defined]
            return await runs.execute(
                runtime.db, run_id, ledger, ME, mappings=MappingRepository(None)
            )

    return asyncio.run(go())


def _edit_in_erp(
    engine: Any, cust_key: int, behind: timedelta = timedelta(0), **contact: str
) -> None:
    """Change a customer's contact fields as a Sage 500 user would (UpdateDate moves, on
    the ERP server's clock: ``behind`` ours)."""
    later = datetime.now(UTC).replace(tzinfo=None) - behind + timedelta(seconds=1)
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


def test_registry_changes_are_imported_into_sage_500_and_erp_changes_come_back(erp) -> None:  # type: ignore[no-untyped-def]
    runtime, connection_id, engine = erp
    first = _sync(runtime, connection_id, ["member_details"])
    assert first.status == "finished"
    assert first.counts.get("failed", 0) == 0
    with runtime.db.transaction() as session:
        member = registry.load_member(session, registry.get_member(session, "M00003"))
        registry.update_member(session, ME, "M00003", replace(member, email="erp.push@example.org"))
    pushed = _sync(runtime, connection_id, ["member_details"])
    assert pushed.counts.get("updated") == 1
    with engine.connect() as conn:
        staged = conn.execute(select(StgCustomer).where(StgCustomer.c.CustID == "C00003")).all()
        email = conn.scalar(
            select(tciContact.c.EMailAddr)
            .join(tarCustomer, tarCustomer.c.PrimaryCntctKey == tciContact.c.CntctKey)
            .where(tarCustomer.c.CustID == "C00003")
        )
    assert staged
    assert staged[-1].ProcessStatus == 1
    assert email == "erp.push@example.org"

    _edit_in_erp(engine, 5, Phone="+1 503 555 0111")
    pulled = _sync(runtime, connection_id, ["member_details"])
    assert pulled.counts.get("updated") == 1
    with runtime.db.read() as session:
        assert registry.get_member(session, "M00005").phone == "+15035550111"


def test_an_erp_change_is_picked_up_when_the_erps_clock_is_hours_behind_ours(
    erp_behind,  # type: ignore[no-untyped-def]
) -> None:
    """The cursor is the newest UpdateDate the ERP reported, not our clock."""
    runtime, connection_id, engine = erp_behind
    with runtime.db.transaction() as session:
        # no overlap: the members the fixture created seconds ago are not read again for
        # it, so only the ledger's cursor can bring the ERP's change in
        runs.settings_for(session, connection_id).overlap_seconds = 0
    assert _sync(runtime, connection_id, ["member_details"]).status == "finished"
    _edit_in_erp(engine, 5, BEHIND, Phone="+1 503 555 0123")
    pulled = _sync(runtime, connection_id, ["member_details"])
    assert pulled.counts.get("updated") == 1
    with runtime.db.read() as session:
        assert registry.get_member(session, "M00005").phone == "+15035550123"
    again = _sync(runtime, connection_id, ["member_details"])
    assert again.counts.get("updated", 0) == 0


def test_balances_are_the_open_invoices_when_sage_500_keeps_no_balance(erp) -> None:  # type: ignore[no-untyped-def]
    runtime, connection_id, engine = erp
    run = _sync(runtime, connection_id, ["balances"])
    assert run.status == "finished"
    from ledgerlink.connectors.sage500.tables import tarInvoice

    with engine.connect() as conn:
        open_total = conn.scalar(
            select(tarInvoice.c.Balance)
            .where(tarInvoice.c.CustKey == 1, tarInvoice.c.Balance > 0)
            .limit(1)
        )
        balances = (
            conn.execute(select(tarInvoice.c.Balance).where(tarInvoice.c.CustKey == 1))
            .scalars()
            .all()
        )
    assert open_total is not None
    with runtime.db.read() as session:
        member_one = session.scalars(select(MemberRow.id).where(MemberRow.number == "M00001")).one()
        balance = session.get(MemberBalance, (connection_id, member_one))
    assert balance is not None
    assert balance.balance_minor == int(sum(balances) * 100)
    assert balance.open_invoices == len([b for b in balances if b > 0])


def test_credit_memos_are_in_the_history_as_credit_notes(erp) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from ledgerlink.connectors.sage500.tables import tarInvoice
    from ledgerlink.store.sync_models import MemberTransaction

    runtime, connection_id, engine = erp
    with engine.begin() as conn:
        key = int(conn.scalar(select(tarInvoice.c.InvcKey).order_by(tarInvoice.c.InvcKey.desc())))
        conn.execute(
            insert(tarInvoice).values(
                InvcKey=key + 1,
                TranID=f"{key + 1:010d}-CM",
                TranNo=f"{key + 1:010d}",
                TranType=502,
                TranDate=datetime.combine(date.today(), datetime.min.time()),
                PostDate=datetime.combine(date.today(), datetime.min.time()),
                TranAmt=-25,
                TranAmtHC=-25,
                Balance=-25,
                BalanceHC=-25,
                CustKey=3,
                CompanyID="SOA",
                CurrID="USD",
                CurrExchRate=1,
                Status=1,
                UpdateCounter=1,
            )
        )
    run = _sync(runtime, connection_id, ["transactions"])
    assert run.status == "finished"
    with runtime.db.read() as session:
        rows = session.scalars(
            select(MemberTransaction).where(MemberTransaction.ledger_id == str(key + 1))
        ).all()
    assert [(r.kind, r.number, r.total_minor, r.outstanding_minor) for r in rows] == [
        ("credit_note", f"{key + 1:010d}-CM", 2500, 2500)
    ]
    _sync(runtime, connection_id, ["balances"])
    with engine.connect() as conn:
        open_minor = sum(
            int(b * 100)
            for b in conn.execute(
                select(tarInvoice.c.Balance).where(
                    tarInvoice.c.CustKey == 3, tarInvoice.c.TranType == 501
                )
            ).scalars()
        )
    with runtime.db.read() as session:
        member = session.scalars(select(MemberRow.id).where(MemberRow.number == "M00003")).one()
        balance = session.get(MemberBalance, (connection_id, member))
    assert balance is not None
    assert balance.balance_minor == open_minor - 2500  # the unused credit lowers what is owed


def test_a_name_longer_than_sage_500_keeps_is_never_cut_in_the_registry(erp) -> None:  # type: ignore[no-untyped-def]
    """Sage 500 keeps 40 characters of a name (the spec cuts it): the ERP's shorter copy is
    how the spec writes it, not a change, so an ERP edit to another field flows back and
    the member keeps the whole name."""
    runtime, connection_id, engine = erp
    long_name = "Worshipful Company of Chartered Accountants of the City"
    with runtime.db.transaction() as session:
        member = registry.load_member(session, registry.get_member(session, "M00004"))
        registry.update_member(
            session,
            ME,
            "M00004",
            replace(member, account_type=AccountType.CORPORATE, organisation=long_name),
        )
    pushed = _sync(runtime, connection_id, ["member_details"])
    assert pushed.counts.get("failed", 0) == 0
    with engine.connect() as conn:
        held = conn.scalar(select(tarCustomer.c.CustName).where(tarCustomer.c.CustKey == 4))
    assert held == long_name[:40]

    _edit_in_erp(engine, 4, EMailAddr="ledger.desk@example.org")
    pulled = _sync(runtime, connection_id, ["member_details"])
    assert pulled.counts.get("updated") == 1
    assert pulled.counts.get("conflicts", 0) == 0
    with runtime.db.read() as session:
        after = registry.load_member(session, registry.get_member(session, "M00004"))
    assert after.email == "ledger.desk@example.org"
    assert after.organisation == long_name
    again = _sync(runtime, connection_id, ["member_details"])
    assert again.counts.get("updated", 0) == 0
    assert set(again.mapping_versions) == {
        "member_to_sage500_customer",
        "sage500_customer_to_member",
    }
