"""What the portal and the API read and start about members besides search and the
registry: the ledger connections a member can be linked in, a bulk create-and-link run
over a selection (ticked member numbers, or every member a search matches), and a CSV
import as one unit of work."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.jobs.port import JobQueue
from ledgerlink.members import bulk, csv_io, linking
from ledgerlink.members.search import MemberQuery, matching_ids
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection


def ledger_connections(session: Session) -> list[Connection]:
    """The connections members are linked in (ledgers, not card gateways), by name."""
    return list(
        session.scalars(
            select(Connection)
            .where(Connection.kind.in_(linking.ledger_kinds()))
            .order_by(Connection.name)
        )
    )


def start_bulk(
    session: Session,
    jobs: JobQueue,
    principal: Principal,
    connection_id: int,
    *,
    member_numbers: list[str],
    filtered: MemberQuery | None = None,
) -> int:
    """Start a bulk create-and-link run, in the caller's transaction: over every member
    ``filtered`` matches when given, else over ``member_numbers``. The run's id."""
    if filtered is not None:
        ids = matching_ids(session, filtered)
        selection: dict[str, Any] = {"all_filtered": True, **selection_of(filtered)}
    else:
        ids = bulk.member_ids_for(session, member_numbers)
        selection = {"member_numbers": len(ids)}
    return bulk.start(session, jobs, principal, connection_id, ids, selection).id


def selection_of(query: MemberQuery) -> dict[str, Any]:
    """The filters of a query that were set, as recorded on a bulk run."""
    return {
        k: v
        for k, v in {
            "q": query.q,
            "level": query.level,
            "account_type": query.account_type,
            "status": query.status,
        }.items()
        if v
    }


def import_file(
    db: Database, principal: Principal, data: bytes, *, dry_run: bool
) -> csv_io.ImportReport:
    """Import a member CSV file in one transaction (``FileRefused`` when it cannot be read
    at all; bad rows are in the report)."""
    with db.transaction() as session:
        return csv_io.import_csv(session, principal, data, dry_run=dry_run)
