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

from sqlalchemy import insert

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


def seed(db: Database, count: int) -> int:
    rng = random.Random(11)
    now = utcnow()
    with db.transaction() as session:
        level = MembershipLevelRow(
            code="standard", name="Standard", annual_fee_minor=12000, currency="USD"
        )
        connection = Connection(kind="sbc", name="SBC", settings={}, is_active=True)
        session.add_all([level, connection])
        session.flush()
        level_id, connection_id = level.id, connection.id
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
        try:
            import ledgerlink.sandbox.sbc  # noqa: F401
        except ImportError:
            print(
                json.dumps(
                    {"benchmark": "bulk_link", "skipped": "ledgerlink.sandbox.sbc is not built yet"}
                )
            )
            return
        print(json.dumps({"benchmark": "bulk_link", "skipped": "sandbox mode not wired yet"}))
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


if __name__ == "__main__":
    main()
