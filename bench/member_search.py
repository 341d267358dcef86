"""Member search latency on 100,000 members (SQLite by default).

    .venv/bin/python bench/member_search.py                      # 100,000 members, SQLite
    .venv/bin/python bench/member_search.py --members 20000 --queries 500
    .venv/bin/python bench/member_search.py --database-url postgresql+psycopg://…/bench

Members are seeded with bulk inserts through the registry's own ``row_values`` (so the
search columns are exactly what an import writes), with a fixed seed: 40% of them linked
to a customer. Then a varied mix of searches runs the way the portal runs them (one page
of 50 plus the total count): name prefixes, first+last, e-mail prefixes, phone endings,
member numbers, and the filters (without account, level, type, status) alone and with
text. Prints one JSON object with p50/p95/p99 per kind and overall, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from ledgerlink.domain.accounts import Address
from ledgerlink.domain.members import AccountType, Member, MemberStatus
from ledgerlink.members.registry import row_values
from ledgerlink.members.search import MemberQuery, search
from ledgerlink.sandbox.people import FIRST_NAMES, LAST_NAMES
from ledgerlink.store.db import Database
from ledgerlink.store.member_models import MemberLinkRow, MemberRow, MembershipLevelRow
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.models import Connection
from ledgerlink.store.types import utcnow

# The demo population's names: searches hit realistic prefix collisions.
FIRST = FIRST_NAMES
LAST = LAST_NAMES
LEVELS = ["standard", "gold", "student", "corporate"]


SAMPLES: list[Member] = []


def seed(db: Database, count: int, rng: random.Random) -> None:
    now = utcnow()
    with db.transaction() as session:
        for code in LEVELS:
            session.add(
                MembershipLevelRow(
                    code=code, name=code.title(), annual_fee_minor=12000, currency="USD"
                )
            )
        session.add(Connection(kind="sbc", name="SBC", settings={}, is_active=True))
    with db.transaction() as session:
        level_ids = {row.code: row.id for row in session.query(MembershipLevelRow)}
    batch: list[dict[str, Any]] = []
    for n in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        corporate = n % 10 == 0
        member = Member(
            number=f"M{n:06d}",
            account_type=AccountType.CORPORATE if corporate else AccountType.PERSONAL,
            level_code=rng.choice(LEVELS),
            status=rng.choice(list(MemberStatus)),
            first_name=first,
            last_name=last,
            organisation=f"{last} {rng.choice(['Holdings', 'Partners', 'Ltd'])}"
            if corporate
            else "",
            email=f"{first.lower()}.{last.lower()}{n}@example.org",
            phone=f"+1212{rng.randint(2000000, 9999999)}",
            address=Address("1 MAIN ST", "", "NEW YORK", "NY", "10001", "US"),
        )
        if n % 97 == 0:
            SAMPLES.append(member)
        batch.append(
            {
                **row_values(member, level_ids[member.level_code]),
                "created_at": now,
                "updated_at": now,
            }
        )
        if len(batch) == 5000:
            with db.transaction() as session:
                session.execute(insert(MemberRow), batch)
            batch = []
    if batch:
        with db.transaction() as session:
            session.execute(insert(MemberRow), batch)
    links = [
        {
            "member_id": i,
            "connection_id": 1,
            "system": "sbc",
            "customer_id": f"c{i}",
            "customer_number": f"M{i:06d}",
            "customer_name": "",
            "created_customer": True,
            "linked_at": now,
            "linked_by": "bench",
        }
        for i in range(1, count + 1)
        if rng.random() < 0.4
    ]
    for start in range(0, len(links), 5000):
        with db.transaction() as session:
            session.execute(insert(MemberLinkRow), links[start : start + 5000])
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def queries(count: int, members: int, rng: random.Random) -> list[tuple[str, MemberQuery]]:
    out: list[tuple[str, MemberQuery]] = []
    kinds = [
        "name",
        "first_last",
        "email",
        "phone",
        "number",
        "without_account",
        "filters",
        "text_and_filters",
    ]
    for i in range(count):
        kind = kinds[i % len(kinds)]
        last, first = rng.choice(LAST), rng.choice(FIRST)
        if kind == "name":
            q = MemberQuery(q=last[: rng.randint(2, len(last))])
        elif kind == "first_last":
            q = MemberQuery(q=f"{first} {last[:3]}")
        elif kind == "email":
            q = MemberQuery(q=rng.choice(SAMPLES).email[: rng.randint(5, 12)])
        elif kind == "phone":
            phone = rng.choice(SAMPLES).phone
            q = MemberQuery(q=f"{phone[5:8]}-{phone[8:]}" if rng.random() < 0.5 else phone[-4:])
        elif kind == "number":
            q = MemberQuery(q=f"M{rng.randint(1, members):06d}"[: rng.randint(4, 7)])
        elif kind == "without_account":
            q = MemberQuery(without_account=True, offset=rng.choice([0, 50, 500]))
        elif kind == "filters":
            q = MemberQuery(
                level=rng.choice(LEVELS),
                account_type=rng.choice(["personal", "corporate"]),
                status=rng.choice(["active", "pending"]),
            )
        else:
            q = MemberQuery(
                q=last[:3], without_account=True, level=rng.choice(LEVELS), status="active"
            )
        out.append((kind, q))
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return round(ordered[k], 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    rng = random.Random(42)
    workdir = Path(tempfile.mkdtemp(prefix="ledgerlink-bench-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    db = Database(url)
    upgrade(db)
    started = time.perf_counter()
    seed(db, args.members, rng)
    seeded = time.perf_counter() - started

    timings: dict[str, list[float]] = {}
    hits: dict[str, list[int]] = {}
    workload = queries(args.queries, args.members, rng)
    with db.read() as session:  # warm the page cache like a running server would be
        for _, q in workload[:50]:
            search(session, q)
    for kind, q in workload:
        with db.read() as session:
            t0 = time.perf_counter()
            page = search(session, q)
            elapsed = (time.perf_counter() - t0) * 1000
        timings.setdefault(kind, []).append(elapsed)
        hits.setdefault(kind, []).append(page.total)
    everything = [t for values in timings.values() for t in values]
    result = {
        "benchmark": "member_search",
        "backend": db.backend,
        "members": args.members,
        "queries": len(workload),
        "seed_seconds": round(seeded, 1),
        "page_size": 50,
        "with_total_count": True,
        "overall_ms": {
            "p50": percentile(everything, 50),
            "p95": percentile(everything, 95),
            "p99": percentile(everything, 99),
            "max": round(max(everything), 2),
        },
        "by_kind_ms": {
            kind: {
                "p50": percentile(values, 50),
                "p95": percentile(values, 95),
                "p99": percentile(values, 99),
                "median_hits": int(statistics.median(hits[kind])),
            }
            for kind, values in timings.items()
        },
    }
    print(json.dumps(result, indent=2))
    db.dispose()


if __name__ == "__main__":
    main()
