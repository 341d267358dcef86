"""Records per second through the PayTrace transaction → Sage 500 cash receipt spec, on
one core, with the shipped spec and tables (compiled once, as a run does).

    .venv/bin/python bench/mapping_throughput.py                # 200,000 records
    .venv/bin/python bench/mapping_throughput.py --records 50000 --repeat 3

The records are generated with a fixed seed: sales and refunds (4:1), 2,000 customers,
amounts spread over 1.00-2,000.99 (nearly all distinct), 28 business dates, one in 50
without an invoice. Throughput is the best of ``--repeat`` passes over all records;
latency percentiles come from a separate pass timing each record. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import time
from typing import Any

from ledgerlink.mapping.engine import compile_spec, load_table
from ledgerlink.mapping.loader import load_document, packaged_file, packaged_text

SPEC = "paytrace_transaction_to_sage500_cash_receipt"


def records(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        refund = i % 5 == 0
        out.append(
            {
                "transaction_id": 5_000_000 + i,
                "transaction_type": "REFUND" if refund else "SALE",
                "amount": f"{'-' if refund else ''}{rng.randint(1, 2000)}.{rng.randint(0, 99):02d}",
                "status_code": 106 if refund else 101,
                "approval_code": f"TAS{rng.randint(100, 999)}",
                "invoice_id": "" if i % 50 == 0 else f"INV-{rng.randint(1, 60000)}",
                "customer_id": f"C{rng.randint(1, 2000):05d}",
                "masked_card_number": "xxxxxxxxxxxx5439",
                "created": {"at": f"3/{rng.randint(1, 28)}/2026 10:{rng.randint(10, 59)}:00 AM"},
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    shared = {
        "payment_status": load_table(
            load_document(packaged_text("payment_status") or "", "payment_status.yaml")
        )
    }
    compiled = compile_spec(load_document(packaged_text(SPEC) or "", packaged_file(SPEC)), shared)
    data = records(args.records)
    apply = compiled.apply

    errors = sum(1 for r in data[:1000] if apply(r).errors)
    best = float("inf")
    gc.collect()
    for _ in range(args.repeat):
        started = time.perf_counter()
        for record in data:
            apply(record)
        best = min(best, time.perf_counter() - started)

    sample = data[: min(len(data), 50_000)]
    latencies = []
    clock = time.perf_counter_ns
    for record in sample:
        t0 = clock()
        apply(record)
        latencies.append(clock() - t0)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1000, 2)

    print(
        json.dumps(
            {
                "spec": SPEC,
                "records": len(data),
                "seconds": round(best, 4),
                "records_per_second": round(len(data) / best),
                "p50_us": pct(0.50),
                "p99_us": pct(0.99),
                "errors_in_first_1000": errors,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


if __name__ == "__main__":
    main()
