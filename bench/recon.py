"""Reconciliation throughput: a full run over ~1,000,000 PayTrace transactions, ~1,000,000
ledger receipts and ~30,000 deposits with breaks of every type injected (0.5% of the rows
of each type), and the daily incremental run over 20,000 new transactions.

    .venv/bin/python bench/recon.py                  # full scale
    .venv/bin/python bench/recon.py --scale 0.1      # a tenth, while developing

The data come from ``tests/support/recon_data.py`` (the property tests' generator, fixed
seed), written once to Parquet under ``--cache`` and read by a fresh process, so the peak
RSS reported is the matcher's (frames, keys, joins) and not the generator's Python lists.
The incremental run is given the prepared history and the previous result, as a
long-running worker keeps them, plus the new rows (the last rows of every side, ~20,000
transactions). Timings are the best and the p50/p99 of ``--repeat`` runs; both runs are
checked (the full run finds exactly the injected breaks; the incremental run equals the
full run). Prints one JSON object.

    .venv/bin/python bench/recon.py --store sqlite --scale 0.05      # the stored path
    .venv/bin/python bench/recon.py --store postgresql               # a throw-away server

``--store`` times what a user waits for: ``run_scope(read=False)`` over a scope whose
sides are stored rows (seeded with bulk Core inserts by one process, not timed but
reported), then, in a second process, the full run and, after the new rows are stored,
the run that follows (the daily run). Wall, CPU (this process only: PostgreSQL's own CPU
is not counted) and peak RSS of that process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from ledgerlink.recon.engine import (  # noqa: E402
    prepare,
    reconcile,
    reconcile_incremental,
    reconcile_prepared,
)
from ledgerlink.recon.frames import SIDES, Sides  # noqa: E402
from ledgerlink.recon.rules import default_spec  # noqa: E402

#: Sales per unit of scale: with their refunds, voids, chargebacks and declines they make
#: about 1,000,000 transaction rows and as many receipts.
SALES = 840_000
PER_BATCH = 28  # -> ~30,000 batches and deposits


def _generate(folder: Path, scale: float, seed: int, rate: float) -> None:
    from tests.support.recon_data import generate

    data = generate(int(SALES * scale), seed=seed, break_rate=rate, per_batch=PER_BATCH)
    folder.mkdir(parents=True, exist_ok=True)
    for side in SIDES:
        data.sides.side(side).write_parquet(folder / f"{side}.parquet")
    expected = [[kind, list(ids)] for kind, ids in sorted(data.expected)]
    (folder / "expected.json").write_text(
        json.dumps(
            {"as_of": data.as_of.isoformat(), "injected": data.injected, "expected": expected}
        )
    )


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)


def _worker(folder: Path, repeat: int, new_txns: int) -> dict[str, Any]:
    import datetime as dt

    meta = json.loads((folder / "expected.json").read_text())
    as_of = dt.date.fromisoformat(meta["as_of"])
    sides = Sides.of(**{side: pl.read_parquet(folder / f"{side}.parquet") for side in SIDES})
    spec = default_spec()
    rows = {side: sides.side(side).height for side in SIDES}

    full_times: list[float] = []
    full_cpu: list[float] = []
    prepare_times: list[float] = []
    result = None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        prepared = prepare(sides, spec)
        middle = time.perf_counter()
        result = reconcile_prepared(prepared, spec, as_of=as_of)
        full_times.append(time.perf_counter() - started)
        full_cpu.append(time.process_time() - cpu)
        prepare_times.append(middle - started)
        del prepared
    assert result is not None
    found = {
        (kind, tuple(ids))
        for kind, ids in zip(
            result.breaks.get_column("type").to_list(),
            result.breaks.get_column("ids").to_list(),
            strict=True,
        )
    }
    expected = {(kind, tuple(ids)) for kind, ids in meta["expected"]}
    full_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    # the daily run: the last ~new_txns transactions (and the same share of every side)
    share = min(1.0, new_txns / max(1, rows["transactions"]))
    history: dict[str, pl.DataFrame] = {}
    fresh: dict[str, pl.DataFrame] = {}
    for side in SIDES:
        frame = sides.side(side)
        cut = frame.height - round(frame.height * share)
        history[side], fresh[side] = frame.head(cut), frame.slice(cut)
    old, new = Sides(**history), Sides(**fresh)
    previous = reconcile(old, spec, as_of=as_of)
    old_prepared = prepare(old, spec)
    incremental_times: list[float] = []
    incremental_cpu: list[float] = []
    changes = None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        changes, _ = reconcile_incremental(old_prepared, new, previous, spec, as_of=as_of)
        incremental_times.append(time.perf_counter() - started)
        incremental_cpu.append(time.process_time() - cpu)
    assert changes is not None
    started = time.perf_counter()
    incremental = changes.apply(previous)
    applied = time.perf_counter() - started
    same = (
        incremental.breaks.equals(result.breaks)
        and incremental.totals.equals(result.totals)
        and incremental.matches.equals(result.matches)
    )
    return {
        "rows": rows,
        "injected_breaks": meta["injected"],
        "breaks_found": result.breaks.height,
        "all_injected_found_and_no_other": found == expected,
        "matches": result.matches.height,
        "full_seconds_best": round(min(full_times), 3),
        "full_seconds_p50": _pct(full_times, 0.5),
        "full_seconds_p99": _pct(full_times, 0.99),
        "full_cpu_seconds_best": round(min(full_cpu), 3),
        "prepare_seconds_best": round(min(prepare_times), 3),
        "transactions_per_second": round(rows["transactions"] / min(full_times)),
        "peak_rss_mib_after_full": full_rss // 1024,
        "incremental_new_transactions": fresh["transactions"].height,
        "incremental_seconds_best": round(min(incremental_times), 3),
        "incremental_seconds_p50": _pct(incremental_times, 0.5),
        "incremental_seconds_p99": _pct(incremental_times, 0.99),
        "incremental_cpu_seconds_best": round(min(incremental_cpu), 3),
        "incremental_changes": {
            "matches_removed": changes.removed_match_ids.len(),
            "matches_added": changes.added_matches.height,
        },
        "incremental_apply_seconds": round(applied, 3),
        "incremental_equals_full": same,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "polars": pl.__version__,
        "threads": pl.thread_pool_size(),
    }


# -- the stored path: the sides in the database, run through recon/runs.py ---------------

PG_PORT = 19917  # the hand-started server's port (this bench's range: 19900-19949)


def _split(sides: Sides, new_txns: int) -> tuple[Sides, Sides]:
    """History and the daily run's new rows (the last ~new_txns transactions and the same
    share of every side), as the engine-only bench splits them."""
    share = min(1.0, new_txns / max(1, sides.transactions.height))
    history: dict[str, pl.DataFrame] = {}
    fresh: dict[str, pl.DataFrame] = {}
    for side in SIDES:
        frame = sides.side(side)
        cut = frame.height - round(frame.height * share)
        history[side], fresh[side] = frame.head(cut), frame.slice(cut)
    return Sides(**history), Sides(**fresh)


def _runtime(url: str, var_dir: Path) -> Any:
    from ledgerlink.runtime import Runtime
    from ledgerlink.settings import Settings

    return Runtime(Settings(var_dir=var_dir, database_url=url))


def _insert_sides(db: Any, scope_id: int, statement_pk: int, sides: Sides) -> None:
    """Bulk Core inserts (executemany in chunks) of the generated rows as stored rows."""
    from sqlalchemy import insert

    from ledgerlink.store.recon_models import (
        ReconBatch,
        ReconReceipt,
        ReconStatementLine,
        ReconTransaction,
    )
    from ledgerlink.store.types import utcnow

    now = utcnow()
    extra = {"scope_id": scope_id, "read_at": now}
    frames = {
        ReconTransaction: sides.transactions.with_columns(pl.col("card_brand").fill_null("")),
        ReconReceipt: sides.receipts.drop("ledger").with_columns(
            pl.col("idempotency_key").fill_null(""),
            pl.col("customer_id").fill_null(""),
            pl.col("reference").fill_null(""),
        ),
        ReconBatch: sides.batches,
    }
    with db.transaction() as session:
        for model, frame in frames.items():
            if db.engine.dialect.name == "postgresql":  # COPY: Core inserts take minutes
                full = frame.with_columns(scope_id=pl.lit(scope_id), read_at=pl.lit(now))
                if model is ReconTransaction:  # the model's client-side defaults
                    full = full.with_columns(invoice_number=pl.lit(""), customer_id=pl.lit(""))
                raw = session.connection().connection.dbapi_connection
                names = ", ".join(full.columns)
                sql = f"COPY {model.__tablename__} ({names}) FROM STDIN"
                with raw.cursor() as cursor, cursor.copy(sql) as copy:
                    for row in full.iter_rows():
                        copy.write_row(row)
                continue
            for chunk in frame.iter_slices(50_000):
                session.execute(insert(model), [{**row, **extra} for row in chunk.to_dicts()])
        lines = sides.deposits.drop("statement_id").with_columns(
            pl.col("reference").fill_null(""), pl.col("bank_ref").fill_null("")
        )
        first = 0
        for chunk in lines.iter_slices(50_000):
            rows = chunk.to_dicts()
            for number, row in enumerate(rows, start=first):
                row["statement_id"] = statement_pk
                row["line_no"] = number
            first += len(rows)
            session.execute(insert(ReconStatementLine), rows)


def _seed(url: str, var_dir: Path, folder: Path, new_txns: int) -> dict[str, Any]:
    """A scope with the history rows stored (timed, but not part of the run's figures)."""
    import datetime as dt

    from ledgerlink.recon.scopes import ensure_scope
    from ledgerlink.store.migrate import upgrade
    from ledgerlink.store.models import Connection
    from ledgerlink.store.recon_models import ReconStatement

    sides = Sides.of(**{side: pl.read_parquet(folder / f"{side}.parquet") for side in SIDES})
    history, _ = _split(sides, new_txns)
    runtime = _runtime(url, var_dir)
    upgrade(runtime.db)
    started = time.perf_counter()
    with runtime.db.transaction() as session:
        gateway = Connection(kind="paytrace", name="PayTrace", settings={})
        ledger = Connection(kind="sbc", name="SBC", settings={}, is_active=True)
        session.add_all([gateway, ledger])
        session.flush()
        scope = ensure_scope(session, gateway.id, ledger.id, actor="bench")
        statement = ReconStatement(
            scope_id=scope.id,
            fingerprint="bench",
            format="csv",
            currency="USD",
            period_start=dt.date(2000, 1, 1),
            period_end=dt.date(2100, 1, 1),
            imported_by="bench",
        )
        session.add(statement)
        session.flush()
        scope_id, statement_pk = scope.id, statement.id
    _insert_sides(runtime.db, scope_id, statement_pk, history)
    return {
        "scope_id": scope_id,
        "statement_pk": statement_pk,
        "seed_seconds": round(time.perf_counter() - started, 1),
    }


def _timed(call: Any) -> tuple[Any, dict[str, Any]]:
    started, cpu = time.perf_counter(), time.process_time()
    value = call()
    return value, {
        "wall_seconds": round(time.perf_counter() - started, 3),
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        #: the largest child (recon/sqlite_arrow.py's readers on SQLite)
        "peak_rss_child_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
    }


def _store_worker(url: str, var_dir: Path, folder: Path, seeded: dict[str, Any], new: int) -> Any:
    """The full stored run, then the new rows stored (untimed), then the incremental run."""
    import asyncio
    import datetime as dt

    from ledgerlink.identity.principal import cli_principal
    from ledgerlink.recon.runs import default_matcher, run_scope

    meta = json.loads((folder / "expected.json").read_text())
    as_of = dt.date.fromisoformat(meta["as_of"])
    runtime = _runtime(url, var_dir)
    me = cli_principal()
    matcher = default_matcher()
    scope_id = seeded["scope_id"]

    def run(full: bool) -> Any:
        return asyncio.run(
            run_scope(
                runtime,
                scope_id,
                me,
                trigger="cli",
                matcher=matcher,
                as_of=as_of,
                read=False,
                full=full,
            )
        )

    full, full_figures = _timed(lambda: run(True))
    sides = Sides.of(**{side: pl.read_parquet(folder / f"{side}.parquet") for side in SIDES})
    _, fresh = _split(sides, new)
    del sides
    started = time.perf_counter()
    _insert_sides(runtime.db, scope_id, seeded["statement_pk"], fresh)
    inserted = time.perf_counter() - started
    daily, daily_figures = _timed(lambda: run(False))
    return {
        "full": {**full_figures, "counts": full.counts, "duration_ms": full.duration_ms},
        "new_rows_insert_seconds": round(inserted, 1),
        "incremental": {
            **daily_figures,
            "new_transactions": fresh.transactions.height,
            "counts": daily.counts,
            "duration_ms": daily.duration_ms,
        },
    }


def _postgres(port: int) -> Any:
    """A throw-away PostgreSQL as the test suite starts one, on ``port``."""
    from contextlib import contextmanager

    from tests.support import postgres as pg

    @contextmanager
    def server() -> Any:
        original = pg._free_port
        pg._free_port = lambda: port  # the bench's own port range
        try:
            with pg.postgres_server() as url:
                yield url
        finally:
            pg._free_port = original

    return server()


def _store_main(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import contextlib
    import tempfile

    var_dir = Path(tempfile.mkdtemp(prefix="ledgerlink-recon-bench-"))
    with contextlib.ExitStack() as stack:
        if args.database_url:
            url = args.database_url
        elif args.store == "postgresql":
            url = stack.enter_context(_postgres(args.pg_port))
        else:
            url = f"sqlite:///{var_dir / 'ledgerlink.db'}"
        common = [sys.executable, __file__, "--new", str(args.new), "--store", args.store]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        job = json.dumps({"url": url, "var_dir": str(var_dir), "folder": str(folder)})
        out = subprocess.run(
            [*common, "--store-step", "seed", "--store-job", job],
            check=False,
            capture_output=True,
            text=True,
            env=env,
        )
        if out.returncode:
            sys.stderr.write(out.stderr)
            raise SystemExit(out.returncode)
        seeded = json.loads((var_dir / "seed.json").read_text())
        job = json.dumps({**json.loads(job), "seeded": seeded})
        out = subprocess.run(
            [*common, "--store-step", "runs", "--store-job", job],
            check=False,
            capture_output=True,
            text=True,
            env=env,
        )
        if out.returncode:
            sys.stderr.write(out.stderr)
            raise SystemExit(out.returncode)
        return {
            "store": "postgresql" if url.startswith("postgresql") else "sqlite",
            "seed_seconds": seeded["seed_seconds"],
            **json.loads((var_dir / "runs.json").read_text()),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--new", type=int, default=20_000, help="new transactions (daily run)")
    parser.add_argument("--break-rate", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ledgerlink-recon-bench"))
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--store", choices=("sqlite", "postgresql"), help="time the stored run path (runs.py)"
    )
    parser.add_argument("--database-url", help="an existing empty database (with --store)")
    parser.add_argument("--pg-port", type=int, default=PG_PORT)
    parser.add_argument("--store-step", choices=("seed", "runs"), help=argparse.SUPPRESS)
    parser.add_argument("--store-job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(_worker(args.worker, args.repeat, args.new)))
        return
    if args.store_step is not None:
        job = json.loads(args.store_job)
        where = (job["url"], Path(job["var_dir"]), Path(job["folder"]))
        if args.store_step == "seed":
            found = _seed(*where, args.new)
        else:
            found = _store_worker(*where, job["seeded"], args.new)
        (where[1] / f"{args.store_step}.json").write_text(json.dumps(found))
        return

    folder = args.cache / f"scale{args.scale}-seed{args.seed}-rate{args.break_rate}"
    started = time.perf_counter()
    if not (folder / "expected.json").is_file():
        _generate(folder, args.scale, args.seed, args.break_rate)
    generated = time.perf_counter() - started
    if args.store is not None:
        stored = _store_main(args, folder)
        print(
            json.dumps(
                {
                    "bench": "recon-stored",
                    "scale": args.scale,
                    **stored,
                    "cpu_load_1min": round(os.getloadavg()[0], 1),
                }
            )
        )
        return
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            str(folder),
            "--repeat",
            str(args.repeat),
            "--new",
            str(args.new),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    report = json.loads(out.stdout)
    report = {
        "bench": "recon",
        "scale": args.scale,
        "generate_seconds": round(generated, 1),
        **report,
    }
    report["targets"] = {
        "full_seconds_max": 10,
        "peak_rss_mib_max": 2048,
        "incremental_seconds_max": 1,
    }
    report["cpu_load_1min"] = round(os.getloadavg()[0], 1)
    report["cpu_count"] = os.cpu_count()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
