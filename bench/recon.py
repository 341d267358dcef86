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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--new", type=int, default=20_000, help="new transactions (daily run)")
    parser.add_argument("--break-rate", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ledgerlink-recon-bench"))
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(_worker(args.worker, args.repeat, args.new)))
        return

    folder = args.cache / f"scale{args.scale}-seed{args.seed}-rate{args.break_rate}"
    started = time.perf_counter()
    if not (folder / "expected.json").is_file():
        _generate(folder, args.scale, args.seed, args.break_rate)
    generated = time.perf_counter() - started
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
