"""Connector throughput: SBC writes/s and reads/s, Sage 500 rows/s read and receipts/s posted.

    .venv/bin/python bench/connector_throughput.py                    # everything
    .venv/bin/python bench/connector_throughput.py sbc --writes 3000
    .venv/bin/python bench/connector_throughput.py sbc-limited --limited-seconds 120
    .venv/bin/python bench/connector_throughput.py sage500 --customers 20000

* ``sbc``: the SBC simulator in its own process (``ledgerlink sandbox serve sbc``, rate limit
  off), ledgerlink's real connection (OAuth through the consent page, tokens in the vault,
  SQLite), ``SbcLedger`` with the client-side limit off, ``--concurrency`` writes in flight.
  Contact creates (writes/s) and a full read of every contact (records/s), at 0 ms and at
  50 ms injected latency.
* ``sbc-limited``: simulator and connection both at SBC's 100 requests/minute; reports the
  share of the allowed rate used and how many requests were refused with 429.
* ``sage500``: the Sage 500 simulator's database (SQLite) with ``--customers`` customers,
  the import processor in its own process; every customer read (rows/s) and receipts
  posted through staging and the import (receipts/s).

Prints one JSON object per measurement (throughput, p50/p99 latency, peak RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledgerlink.domain.accounts import CustomerDraft, ReceiptRequest
from ledgerlink.domain.money import Money


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def own_peak_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def report(**fields: Any) -> None:
    print(json.dumps({"benchmark": "connector throughput", **fields}), flush=True)


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {"p50_ms": 0.0, "p99_ms": 0.0}
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[max(int(len(ordered) * 0.99) - 1, 0)] * 1000, 2),
    }


async def run_concurrently(
    count: int, concurrency: int, call: Callable[[int], Awaitable[Any]]
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with semaphore:
            started = time.perf_counter()
            await call(n)
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return time.perf_counter() - began, latencies


# -- SBC ----------------------------------------------------------------------------------


def start_sbc(var_dir: Path, port: int, settings: list[str]) -> subprocess.Popen[bytes]:
    from sandbox_throughput import start

    return start("sbc", port, var_dir, settings)


def ledgerlink_runtime(var_dir: Path) -> Any:
    from cryptography.fernet import Fernet

    from ledgerlink.runtime import Runtime
    from ledgerlink.settings import Settings
    from ledgerlink.store.migrate import upgrade

    settings = Settings(
        var_dir=var_dir,
        vault_keys=Fernet.generate_key().decode(),
        log_level="warning",
        _env_file=None,  # type: ignore[call-arg]
    )
    runtime = Runtime(settings)
    upgrade(runtime.db)
    return runtime


def connected_ledger(runtime: Any, base_url: str, per_minute: int) -> Any:
    """ledgerlink's SBC connection to the simulator, authorised as `make demo` does."""
    from sqlalchemy import select

    from ledgerlink import connections, demo
    from ledgerlink.connectors.factory import ledger_for
    from ledgerlink.identity.principal import cli_principal
    from ledgerlink.sandbox.supervisor import SimulatorAddress
    from ledgerlink.store.models import Connection

    where = {"sbc": SimulatorAddress("sbc", base_url)}
    with runtime.db.transaction() as session:
        demo.ensure_connections(runtime, session, demo.sandbox_connections(runtime, where))
    note = demo.connect_sbc_sandbox(runtime, where)
    with runtime.db.transaction() as session:
        connection = session.scalars(select(Connection).where(Connection.kind == "sbc")).one()
        if connection.auth_status != "connected":
            raise RuntimeError(f"could not connect to the SBC simulator: {note}")
        connections.update(
            session,
            runtime.vault,
            cli_principal(),
            connection,
            settings={"rate_limit_per_minute": per_minute},
        )
        session.flush()
        session.expunge(connection)
    return ledger_for(runtime, connection)


async def sbc_writes_and_reads(
    ledger: Any, writes: int, concurrency: int, tag: str
) -> dict[str, Any]:
    async def create(n: int) -> None:
        draft = CustomerDraft(number=f"{tag}{n:06d}", name=f"Bench {tag} {n}")
        await ledger.create_customer(draft, f"bench:{tag}:{n}")

    await ledger.base_currency()  # warm the token and the settings cache
    write_seconds, write_latencies = await run_concurrently(writes, concurrency, create)
    started = time.perf_counter()
    records = 0
    async for _ in ledger.customers():
        records += 1
    read_seconds = time.perf_counter() - started
    return {
        "writes": writes,
        "write_seconds": round(write_seconds, 2),
        "writes_per_second": round(writes / write_seconds),
        **percentiles(write_latencies),
        "records_read": records,
        "read_seconds": round(read_seconds, 2),
        "records_read_per_second": round(records / read_seconds),
    }


def bench_sbc(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp:
        port = free_port()
        process = start_sbc(Path(tmp) / "sandbox", port, ["rate_limit_per_minute=0"])
        base_url = f"http://127.0.0.1:{port}"
        try:
            runtime = ledgerlink_runtime(Path(tmp) / "var")
            for latency in (0, 50):
                httpx.put(f"{base_url}/_sandbox/faults", json={"latency_ms": latency})
                ledger = connected_ledger(runtime, base_url, 0)

                async def measure(ledger: Any, tag: str) -> dict[str, Any]:
                    async with ledger:
                        return await sbc_writes_and_reads(
                            ledger, args.writes, args.concurrency, tag
                        )

                result = asyncio.run(measure(ledger, f"L{latency}-"))
                report(
                    system="sbc",
                    injected_latency_ms=latency,
                    concurrency=args.concurrency,
                    rate_limit="off",
                    **result,
                    ledgerlink_peak_rss_kib=own_peak_rss_kib(),
                    simulator_peak_rss_kib=peak_rss_kib(process.pid),
                )
        finally:
            process.terminate()
            process.wait(timeout=10)


def bench_sbc_limited(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp:
        port = free_port()
        process = start_sbc(Path(tmp) / "sandbox", port, ["rate_limit_per_minute=100"])
        base_url = f"http://127.0.0.1:{port}"
        try:
            runtime = ledgerlink_runtime(Path(tmp) / "var")
            ledger = connected_ledger(runtime, base_url, 100)
            httpx.post(f"{base_url}/_sandbox/reset_rate_limits")

            async def measure() -> dict[str, Any]:
                done = 0
                refused = 0
                latencies: list[float] = []
                finished_at: list[float] = []
                deadline = time.monotonic() + args.limited_seconds
                from ledgerlink.connectors.errors import RateLimited

                async def worker(offset: int) -> None:
                    nonlocal done, refused
                    n = offset
                    while time.monotonic() < deadline:
                        started = time.perf_counter()
                        try:
                            draft = CustomerDraft(number=f"R{n:06d}", name=f"Limited {n}")
                            await ledger.create_customer(draft, f"bench:limited:{n}")
                            done += 1
                            finished_at.append(time.monotonic())
                        except RateLimited:
                            refused += 1
                        latencies.append(time.perf_counter() - started)
                        n += 1000

                began = time.perf_counter()
                async with ledger:
                    await asyncio.gather(*(worker(k) for k in range(8)))
                elapsed = time.perf_counter() - began
                # Steady rate: successes between the first and the last one (the start-up
                # token refresh and the tail after the deadline are not the limiter's doing).
                span = finished_at[-1] - finished_at[0] if len(finished_at) > 1 else elapsed
                per_minute = (len(finished_at) - 1) / span * 60 if span else 0.0
                return {
                    "seconds": round(elapsed, 1),
                    "requests_succeeded": done,
                    "requests_failed_429": refused,
                    "allowed_per_minute": 100,
                    "achieved_per_minute": round(per_minute, 1),
                    "share_of_allowed_rate": round(per_minute / 100, 3),
                    "overall_per_minute_incl_startup": round(done / elapsed * 60, 1),
                    **percentiles(latencies),
                }

            result = asyncio.run(measure())
            sandbox_429 = httpx.get(f"{base_url}/_sandbox/faults").json()
            report(
                system="sbc",
                rate_limit="100/min (simulator and client)",
                **result,
                simulator_fault_counts=sandbox_429["counts"],
            )
        finally:
            process.terminate()
            process.wait(timeout=10)


# -- Sage 500 --------------------------------------------------------------------------------


def _import_loop(url: str, stop: Any) -> None:
    from sqlalchemy import create_engine

    from ledgerlink.sandbox import sage500

    engine = create_engine(url)
    processor = sage500.ImportProcessor(
        engine, sage500.Sage500Config(import_interval_seconds=0.01, import_batch_size=2000)
    )
    event = threading.Event()
    threading.Thread(target=lambda: (stop.wait(), event.set()), daemon=True).start()
    processor.run_forever(event)


def bench_sage500(args: argparse.Namespace) -> None:
    from sqlalchemy import create_engine

    from ledgerlink.connectors.sage500.ledger import Sage500Ledger, Sage500Options
    from ledgerlink.sandbox import sage500

    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp:
        url = f"sqlite:///{tmp}/sage500.sqlite3"
        engine = create_engine(url)
        sage500.create_schema(engine)
        began = time.perf_counter()
        sage500.seed(
            engine, sage500.Sage500Config(seed_people=args.customers, invoices_per_customer=1)
        )
        seeded = time.perf_counter() - began
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        importer = context.Process(target=_import_loop, args=(url, stop), daemon=True)
        importer.start()
        options = Sage500Options(
            company_id="SOA", receipt_gl_account="1010-00", import_wait_seconds=120
        )
        ledger = Sage500Ledger(engine, options, owns_engine=False)
        try:

            async def read() -> tuple[int, float]:
                started = time.perf_counter()
                rows = 0
                async for _ in ledger.customers():
                    rows += 1
                return rows, time.perf_counter() - started

            rows, read_seconds = asyncio.run(read())
            report(
                system="sage500",
                operation="read customers",
                database="sqlite",
                rows=rows,
                seconds=round(read_seconds, 2),
                rows_per_second=round(rows / read_seconds),
                seed_seconds=round(seeded, 1),
                ledgerlink_peak_rss_kib=own_peak_rss_kib(),
            )

            async def post(n: int) -> None:
                await ledger.post_receipt(
                    ReceiptRequest(
                        idempotency_key=f"bench:{n}",
                        customer_id=str(1 + n % 49),  # every 50th customer is inactive
                        date=date.today(),
                        amount=Money.parse(f"{1 + n % 50}.00", "USD"),
                        reference=f"bench {n}",
                    )
                )

            seconds, latencies = asyncio.run(
                run_concurrently(args.receipts, args.concurrency, post)
            )
            report(
                system="sage500",
                operation="post receipts (staging + import)",
                database="sqlite",
                receipts=args.receipts,
                concurrency=args.concurrency,
                seconds=round(seconds, 2),
                receipts_per_second=round(args.receipts / seconds),
                **percentiles(latencies),
                ledgerlink_peak_rss_kib=own_peak_rss_kib(),
                importer_peak_rss_kib=peak_rss_kib(importer.pid or 0),
            )
        finally:
            stop.set()
            importer.join(timeout=10)
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="*", default=["sbc", "sbc-limited", "sage500"])
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--limited-seconds", type=float, default=120.0)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--receipts", type=int, default=2000)
    args = parser.parse_args()
    from ledgerlink.logs import configure_logging

    configure_logging("warning", "console")
    for what in args.what:
        {"sbc": bench_sbc, "sbc-limited": bench_sbc_limited, "sage500": bench_sage500}[what](args)


if __name__ == "__main__":
    main()
