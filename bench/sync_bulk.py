"""Member-details sync throughput: 100,000 linked members pushed to the SBC simulator.

    .venv/bin/python bench/sync_bulk.py                    # 100,000 members
    .venv/bin/python bench/sync_bulk.py --members 20000

Set-up (not timed): the SBC simulator's state is prepared with one contact per member
whose e-mail is out of date, ledgerlink's SQLite database gets the members and their
links, and the connection is authorised through the consent page. Then two timed runs
of ``member_details`` with the client-side rate limit off: the first pushes every
member's e-mail to SBC (one update per contact), the second finds nothing to do.
Prints one JSON object per run: records/s, writes, seconds, peak RSS of ledgerlink and of
the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from connector_throughput import (  # type: ignore[import-not-found]
    connected_ledger,
    free_port,
    ledgerlink_runtime,
    peak_rss_kib,
    start_sbc,
)
from sqlalchemy import insert, select

from ledgerlink.domain.accounts import Address
from ledgerlink.domain.members import AccountType, Member, MemberStatus
from ledgerlink.identity.principal import cli_principal
from ledgerlink.members.registry import row_values
from ledgerlink.store.member_models import MemberLinkRow, MemberRow, MembershipLevelRow
from ledgerlink.store.models import Connection
from ledgerlink.store.types import utcnow
from ledgerlink.sync import runs


def member(n: int) -> Member:
    return Member(
        number=f"M{n:06d}",
        account_type=AccountType.PERSONAL,
        level_code="standard",
        status=MemberStatus.ACTIVE,
        first_name=f"Given{n}",
        last_name=f"Family{n}",
        email=f"member{n}@example.org",
        phone="",
        address=Address(),
    )


def prepare_sandbox(state_dir: Path, count: int) -> list[str]:
    """SBC contacts for the members, e-mails out of date; returns their ids in order."""
    from ledgerlink.sandbox.sbc.books import Books
    from ledgerlink.sandbox.sbc.config import SbcConfig
    from ledgerlink.sandbox.sbc.seed import seed
    from ledgerlink.sandbox.sbc.store import Store

    store = Store(state_dir)
    books = Books(store)
    seed(books, SbcConfig(seed_people=0))
    ids = []
    with store.unit():
        for n in range(1, count + 1):
            contact, _ = books.create_contact(
                "a1b2c3d4e5f60718293a4b5c6d7e8f90",
                {
                    "name": f"Given{n} Family{n}",
                    "contact_type_ids": ["CUSTOMER"],
                    "reference": f"M{n:06d}",
                    "email": f"old{n}@example.org",
                },
            )
            ids.append(contact["id"])
    store.close()
    return ids


def prepare_registry(runtime: Any, connection_id: int, contact_ids: list[str]) -> None:
    now = utcnow()
    with runtime.db.transaction() as session:
        level = MembershipLevelRow(
            code="standard", name="Standard", annual_fee_minor=12000, currency="USD"
        )
        session.add(level)
        session.flush()
        level_id = level.id
    for offset in range(0, len(contact_ids), 5000):
        chunk = range(offset + 1, min(offset + 5000, len(contact_ids)) + 1)
        with runtime.db.transaction() as session:
            session.execute(
                insert(MemberRow),
                [
                    {**row_values(member(n), level_id), "created_at": now, "updated_at": now}
                    for n in chunk
                ],
            )
    with runtime.db.read() as session:
        ids = dict(session.execute(select(MemberRow.number, MemberRow.id)).all())
    for offset in range(0, len(contact_ids), 5000):
        with runtime.db.transaction() as session:
            session.execute(
                insert(MemberLinkRow),
                [
                    {
                        "member_id": ids[f"M{n:06d}"],
                        "connection_id": connection_id,
                        "system": "sbc",
                        "customer_id": contact_ids[n - 1],
                        "customer_number": f"M{n:06d}",
                        "customer_name": f"Given{n} Family{n}",
                        "created_customer": False,
                        "linked_at": now,
                        "linked_by": "bench",
                    }
                    for n in range(offset + 1, min(offset + 5000, len(contact_ids)) + 1)
                ],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    args = parser.parse_args()
    from ledgerlink.logs import configure_logging

    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp:
        began = time.perf_counter()
        contact_ids = prepare_sandbox(Path(tmp) / "sandbox" / "sandbox" / "sbc", args.members)
        port = free_port()
        process = start_sbc(Path(tmp) / "sandbox", port, ["rate_limit_per_minute=0"])
        try:
            runtime = ledgerlink_runtime(Path(tmp) / "var")
            connected_ledger(runtime, f"http://127.0.0.1:{port}", 0)
            with runtime.db.read() as session:
                connection_id = session.scalars(select(Connection.id)).one()
            prepare_registry(runtime, connection_id, contact_ids)
            setup = time.perf_counter() - began
            for label in ("first run (every e-mail pushed)", "second run (no changes)"):
                with runtime.db.transaction() as session:
                    run_id = runs.start(
                        session, None, cli_principal(), connection_id, ["member_details"]
                    ).id
                with runtime.db.read() as session:
                    connection = session.get(Connection, connection_id)
                    session.expunge(connection)
                from ledgerlink.connectors.factory import ledger_for

                async def go(run_id: int = run_id, connection: Any = connection) -> Any:
                    ledger = ledger_for(runtime, connection)
                    try:
                        return await runs.execute(runtime.db, run_id, ledger, cli_principal())
                    finally:
                        await ledger.aclose()

                started = time.perf_counter()
                run = asyncio.run(go())
                seconds = time.perf_counter() - started
                print(
                    json.dumps(
                        {
                            "benchmark": "sync_bulk",
                            "run": label,
                            "members": args.members,
                            "status": run.status,
                            "seconds": round(seconds, 1),
                            "records_per_second": round(args.members / seconds),
                            "writes": run.counts.get("updated", 0),
                            "counts": run.counts,
                            "setup_seconds": round(setup, 1),
                            "ledgerlink_peak_rss_mib": round(
                                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                            ),
                            "simulator_peak_rss_mib": round(peak_rss_kib(process.pid) / 1024, 1),
                        }
                    ),
                    flush=True,
                )
        finally:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
