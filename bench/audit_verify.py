"""How long checking the audit chain takes: a full verification against the signed
checkpoints, and the incremental check the portal, the API and the quarter-hourly job run.

Builds a fresh SQLite database (or uses --database-url, which must be an empty, migrated
or migratable database you can throw away) with --entries audit entries, then times:

* ``full``: walking every entry and checking every checkpoint (what an administrator's
  "Re-verify everything", the nightly job and ``ledgerlink audit verify`` cost);
* ``incremental_after_new``: the check after --new entries were written since the last
  checkpoint (what a portal/API call costs when the chain has moved);
* ``incremental_nothing_new``: the check when nothing was written since.

    .venv/bin/python bench/audit_verify.py                  # 100,000 entries
    .venv/bin/python bench/audit_verify.py --entries 20000

Prints one JSON object. Runtime is bounded by building the log (about a minute for
100,000 entries on SQLite).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import SecretStr

from ledgerlink.logs import configure_logging
from ledgerlink.settings import Settings
from ledgerlink.store import audit, audit_checks
from ledgerlink.store.db import Database
from ledgerlink.store.migrate import upgrade
from ledgerlink.vault import Vault

BATCH = 5000


def fill(db: Database, count: int, start: int) -> None:
    done = 0
    while done < count:
        size = min(BATCH, count - done)
        with db.transaction() as session:
            for n in range(start + done, start + done + size):
                audit.record(
                    session,
                    actor="bench@example.org",
                    action="payment.posted",
                    entity_type="payment",
                    entity_id=n,
                    before={"status": "pending"},
                    after={"status": "posted", "amount_minor": n * 7 % 100000, "currency": "USD"},
                )
        done += size


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return round(time.perf_counter() - started, 4), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=100, help="entries written after anchoring")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    configure_logging("WARNING", "console")

    with tempfile.TemporaryDirectory(prefix="ll-audit-bench-") as tmp:
        key = Fernet.generate_key().decode()
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(
            var_dir=Path(tmp) / "var",
            database_url=url,
            vault_keys=SecretStr(key),
            _env_file=None,  # type: ignore[call-arg]
        )
        vault = Vault([key])
        db = Database(settings.resolved_database_url)
        try:
            upgrade(db)
            build_s, _ = timed(lambda: fill(db, args.entries, 1))

            def run(kind: audit_checks.Kind) -> audit_checks.AuditCheck:
                return audit_checks.check(settings, db, vault, kind=kind, checked_by="bench")

            plain_s, plain = timed(lambda: audit.verify_all(db))
            full_s, full = timed(lambda: run("full"))
            fill(db, args.new, args.entries + 1)
            after_new_s, after_new = timed(lambda: run("incremental"))
            nothing_s, nothing = timed(lambda: run("incremental"))
            assert plain.ok
            assert full.ok
            assert after_new.ok
            assert nothing.ok
            print(
                json.dumps(
                    {
                        "benchmark": "audit_verify",
                        "backend": db.backend,
                        "entries": args.entries,
                        "build_s": build_s,
                        "hash_chain_only_s": plain_s,
                        "full": {"seconds": full_s, "rows_read": full.rows_read},
                        "incremental_after_new": {
                            "new_entries": args.new,
                            "seconds": after_new_s,
                            "rows_read": after_new.rows_read,
                        },
                        "incremental_nothing_new": {
                            "seconds": nothing_s,
                            "rows_read": nothing.rows_read,
                        },
                    }
                )
            )
        finally:
            db.dispose()


if __name__ == "__main__":
    main()
