"""The member page names each ledger transaction for what it is: a chargeback ledgerlink
posted is a chargeback there, though Sage 500 lists it as a refund (money going back)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from ledgerlink.connectors.factory import ledger_for
from ledgerlink.identity.roles import Role
from ledgerlink.payments import disputes
from ledgerlink.settings import Settings
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import Connection
from ledgerlink.sync import runs
from tests.support.payments import ME, PaymentsWorld, profiles, sage500_world
from tests.support.web import make_user, sign_in


def _link_and_sync_history(world: PaymentsWorld, customer: str) -> str:
    """Link the payer's member to its Sage 500 customer and sync transaction history; the
    member's number."""
    number = "M" + customer[1:]
    with world.runtime.db.transaction() as session:
        member_id = session.scalars(select(MemberRow.id).where(MemberRow.number == number)).one()
        session.add(
            MemberLinkRow(
                member_id=member_id,
                connection_id=world.ledger_id,
                system="sage500",
                customer_id=str(int(customer[1:])),
                customer_number=customer,
                linked_at=datetime.now(UTC),
                linked_by="test",
            )
        )
        run_id = runs.start(session, None, ME, world.ledger_id, ["transactions"]).id
        connection = session.get(Connection, world.ledger_id)
        assert connection is not None
        session.expunge(connection)

    async def sync() -> None:
        async with ledger_for(world.runtime, connection) as ledger:  # type: ignore[attr-defined]
            await runs.execute(
                world.runtime.db, run_id, ledger, ME, mappings=MappingRepository(None)
            )

    asyncio.run(sync())
    return number


def test_a_chargeback_is_named_a_chargeback_on_the_member_page(
    settings: Settings, tmp_path: Path, client
) -> None:  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path, people=2) as world:
        customer = profiles(world)[0]
        first = world.open_invoices(int(customer[1:]))[0]
        disputed = world.pay(customer, f"{Decimal(first['Balance']):.2f}", first["TranID"])
        world.settle()
        world.poll()
        world.process()
        world.dispute(disputed)
        rows = disputes.parse_report(world.dispute_report(), "disputes.csv")
        with world.runtime.db.transaction() as session:
            assert disputes.import_report(session, rows, world.paytrace_id).problems == []
        world.process()
        assert sorted(p.action for p in world.postings()) == ["receipt", "reversal"]
        number = _link_and_sync_history(world, customer)
        sign_in(client, make_user(world.runtime.db, Role.VIEWER).email)
        page = client.get(f"/members/{number}").text
    table = re.search(r'data-testid="member-transactions">(.*?)</table>', page, re.S)
    assert table is not None
    kinds = sorted(
        cells[2]
        for cells in (
            re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table[1])
        )
        if len(cells) > 2 and cells[2] != "invoice"
    )
    assert kinds == ["chargeback", "receipt"]
