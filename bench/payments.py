"""Payments: inbound events durably accepted per second, and their latency.

    .venv/bin/python bench/payments.py [--seconds 10] [--connections 32]

``ledgerlink serve`` runs as users run it (embedded default: SQLite, its own process) with
a PayTrace connection; aiohttp posts PayTrace silent posts (``parmList``), each a new
transaction, for a fixed time. An event counts once the endpoint answered 200, which it
does only after the event is committed to the inbox. Prints one JSON object (events/s,
p50/p99 latency, server peak RSS, events stored as counted in the database afterwards).

(The second figure of the issue, payment → posted receipt lag, needs the posting jobs.)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from connector_throughput import free_port, peak_rss_kib  # type: ignore[import-not-found]


def prepare(var_dir: Path) -> tuple[dict[str, str], int]:
    from cryptography.fernet import Fernet

    from ledgerlink import connections
    from ledgerlink.identity.principal import cli_principal
    from ledgerlink.runtime import Runtime
    from ledgerlink.settings import Settings
    from ledgerlink.store.migrate import upgrade

    keys = Fernet.generate_key().decode()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINK_")}
    env.update(
        LEDGERLINK_VAR_DIR=str(var_dir), LEDGERLINK_VAULT_KEYS=keys, LEDGERLINK_LOG_LEVEL="warning"
    )
    runtime = Runtime(Settings(var_dir=var_dir, vault_keys=keys, _env_file=None))  # type: ignore[call-arg]
    upgrade(runtime.db)
    with runtime.db.transaction() as session:
        connection = connections.create(
            session,
            runtime.vault,
            cli_principal(),
            kind="paytrace",
            name="PayTrace",
            settings={"username": "u", "integrator_id": "i"},
            secrets={"password": "p"},
        )
        connection_id = int(connection.id)
    runtime.db.dispose()
    return env, connection_id


async def drive(url: str, seconds: float, connections: int) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    counter = itertools.count(180_000_001)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                n = next(counter)
                form = {
                    "parmList": f"TRANSACTIONID~{n}|TRANXTYPE~SALE|ORDERID~INV-{n}|CUSTID~C00001|"
                    f"AMOUNT~{1 + n % 500}.00|RESPONSECODE~101|MASKEDCARD~xxxxxxxxxxxx5439|"
                }
                started = time.perf_counter()
                async with session.post(url, data=form) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return len(latencies), time.perf_counter() - began, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp:
        env, connection_id = prepare(Path(tmp) / "var")
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledgerlink.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("ledgerlink did not start")
                time.sleep(0.1)
            url = f"{base}/inbound/paytrace/{connection_id}/silent-post"
            accepted, elapsed, latencies = asyncio.run(drive(url, args.seconds, args.connections))
            latencies.sort()
            from ledgerlink.store.db import Database

            db = Database(f"sqlite:///{Path(tmp) / 'var' / 'ledgerlink.db'}")
            with db.engine.connect() as conn:
                stored = conn.exec_driver_sql("SELECT COUNT(*) FROM payment_events").scalar()
            db.dispose()
            print(
                json.dumps(
                    {
                        "benchmark": "payments inbound",
                        "database": "sqlite (embedded default)",
                        "connections": args.connections,
                        "seconds": round(elapsed, 2),
                        "events_accepted": accepted,
                        "events_stored": stored,
                        "events_per_second": round(accepted / elapsed),
                        "p50_ms": round(statistics.median(latencies) * 1000, 2),
                        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
                        "server_peak_rss_mib": round(peak_rss_kib(server.pid) / 1024, 1),
                    }
                ),
                flush=True,
            )
        finally:
            server.terminate()
            server.wait(timeout=15)


if __name__ == "__main__":
    main()
