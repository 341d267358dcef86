"""Bulk create-and-link throughput (members per second), rate limit off.

    .venv/bin/python bench/bulk_link.py                         # 2,000 members, fake ledger
    .venv/bin/python bench/bulk_link.py --members 5000 --concurrency 8
    .venv/bin/python bench/bulk_link.py --sandbox               # the SBC simulator, if built

Measures ledgerlink's side of a bulk run: duplicate checks (customer index, rapidfuzz),
the idempotent create, the link row and its audit entry, and the per-item progress
commit, on SQLite. Against the in-memory fake ledger the upstream costs nothing, so the
figure is the ceiling; ``--sandbox`` puts the SBC simulator (HTTP over loopback, rate
limit 0 = off) behind it when ``ledgerlink.sandbox.sbc`` exists. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledgerlink.domain.accounts import Address
from ledgerlink.domain.members import AccountType, Member, MemberStatus
from ledgerlink.identity.principal import cli_principal
from ledgerlink.members import bulk
from ledgerlink.members.registry import row_values
from ledgerlink.members.search import MemberQuery, matching_ids
from ledgerlink.store.db import Database
from ledgerlink.store.member_models import MemberRow, MembershipLevelRow
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.models import Connection
from ledgerlink.store.types import utcnow
from tests.support.fake_ledger import FakeLedger


def seed(db: Database, count: int, connection_id: int | None = None) -> int:
    rng = random.Random(11)
    now = utcnow()
    with db.transaction() as session:
        level = MembershipLevelRow(
            code="standard", name="Standard", annual_fee_minor=12000, currency="USD"
        )
        session.add(level)
        if connection_id is None:
            connection = Connection(kind="sbc", name="SBC", settings={}, is_active=True)
            session.add(connection)
            session.flush()
            connection_id = connection.id
        session.flush()
        level_id = level.id
    rows: list[dict[str, Any]] = []
    for n in range(1, count + 1):
        member = Member(
            number=f"M{n:06d}",
            account_type=AccountType.PERSONAL,
            level_code="standard",
            status=MemberStatus.ACTIVE,
            # distinct names, so no member is held back as a likely duplicate of another
            first_name=f"Given{n}",
            last_name=f"Family{rng.randint(0, 10**9)}x{n}",
            email=f"member{n}@example.org",
            phone="",
            address=Address(),
        )
        rows.append({**row_values(member, level_id), "created_at": now, "updated_at": now})
    with db.transaction() as session:
        session.execute(insert(MemberRow), rows)
    return connection_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=bulk.DEFAULT_CONCURRENCY)
    parser.add_argument("--sandbox", action="store_true", help="Use the SBC simulator.")
    args = parser.parse_args()
    if args.sandbox:
        run_against_sandbox(args)
        return

    workdir = Path(tempfile.mkdtemp(prefix="ledgerlink-bench-"))
    db = Database(f"sqlite:///{workdir / 'bench.db'}")
    upgrade(db)
    connection_id = seed(db, args.members)
    principal = cli_principal()
    with db.transaction() as session:
        ids = matching_ids(session, MemberQuery(without_account=True, connection_id=connection_id))
        run_id = bulk.start(session, None, principal, connection_id, ids, {"bench": True}).id
    ledger = FakeLedger()
    started = time.perf_counter()
    result = asyncio.run(bulk.run(db, run_id, ledger, principal, concurrency=args.concurrency))
    elapsed = time.perf_counter() - started
    assert result["counts"]["created"] == args.members, result["counts"]
    print(
        json.dumps(
            {
                "benchmark": "bulk_link",
                "ledger": "in-memory fake (rate limit off)",
                "database": "sqlite",
                "members": args.members,
                "concurrency": args.concurrency,
                "seconds": round(elapsed, 2),
                "members_per_second": round(args.members / elapsed, 1),
                "counts": result["counts"],
                "ledger_creates": len(ledger.by_id),
            },
            indent=2,
        )
    )
    db.dispose()


def run_against_sandbox(args: argparse.Namespace) -> None:
    """The same run with the SBC simulator (its own process, rate limit off) behind the real
    connection: OAuth, tokens in the vault, HTTP over loopback."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from connector_throughput import (  # type: ignore[import-not-found]
        connected_ledger,
        free_port,
        ledgerlink_runtime,
        peak_rss_kib,
        start_sbc,
    )

    from ledgerlink.logs import configure_logging

    configure_logging("warning", "console")
    workdir = Path(tempfile.mkdtemp(prefix="ledgerlink-bench-"))
    port = free_port()
    process = start_sbc(workdir / "sandbox", port, ["rate_limit_per_minute=0", "seed_people=0"])
    try:
        runtime = ledgerlink_runtime(workdir / "var")
        ledger = connected_ledger(runtime, f"http://127.0.0.1:{port}", 0)
        with runtime.db.read() as session:
            connection_id = session.scalars(select(Connection.id)).one()
        seed(runtime.db, args.members, connection_id)
        principal = cli_principal()
        with runtime.db.transaction() as session:
            query = MemberQuery(without_account=True, connection_id=connection_id)
            ids = matching_ids(session, query)
            run_id = bulk.start(session, None, principal, connection_id, ids, {"bench": True}).id

        async def go() -> dict[str, Any]:
            async with ledger:
                return await bulk.run(
                    runtime.db, run_id, ledger, principal, concurrency=args.concurrency
                )

        started = time.perf_counter()
        result = asyncio.run(go())
        elapsed = time.perf_counter() - started
        contacts = httpx.get(f"http://127.0.0.1:{port}/_sandbox/state").json()
        print(
            json.dumps(
                {
                    "benchmark": "bulk_link",
                    "ledger": "SBC simulator over HTTP (rate limit off)",
                    "database": "sqlite",
                    "members": args.members,
                    "concurrency": args.concurrency,
                    "seconds": round(elapsed, 2),
                    "members_per_second": round(args.members / elapsed, 1),
                    "counts": result["counts"],
                    "sbc_contacts": next(iter(contacts["businesses"].values()))["contacts"],
                    "simulator_peak_rss_kib": peak_rss_kib(process.pid),
                },
                indent=2,
            )
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
