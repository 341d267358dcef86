"""Requests per second of each HTTP simulator, with faults and rate limits off.

Each simulator runs as users run it (``ledgerlink sandbox serve …`` in its own process,
fresh state under a temporary var directory); a keep-alive aiohttp client with many
connections drives one operation at a time for a fixed duration. Prints one JSON object
per operation: requests/s, p50/p99 latency and the simulator's peak RSS.

    .venv/bin/python bench/sandbox_throughput.py [--seconds 8] [--connections 32]

The sync and connector benchmarks depend on these figures: a connector cannot go faster
than the simulator it talks to.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import httpx

Operation = Callable[[aiohttp.ClientSession, int], Awaitable[None]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def start(system: str, port: int, var_dir: Path, settings: list[str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINK_")}
    env.update(LEDGERLINK_VAR_DIR=str(var_dir), LEDGERLINK_LOG_LEVEL="warning")
    args = [sys.executable, "-m", "ledgerlink.cli", "sandbox", "serve", system, "--port", str(port)]
    for setting in settings:
        args += ["--set", setting]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sandbox/faults", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the {system} simulator did not start")


async def drive(
    base: str, operation: Operation, seconds: float, connections: int
) -> dict[str, Any]:
    latencies: list[float] = []
    counter = itertools.count()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base_url=base, connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await operation(session, next(counter))
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


# -- PayTrace ---------------------------------------------------------------------------


async def paytrace_operations(base: str) -> dict[str, Operation]:
    from ledgerlink.sandbox.paytrace import PayTraceConfig

    config = PayTraceConfig()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/oauth/token",
            data={
                "grant_type": "password",
                "username": config.username,
                "password": config.password,
            },
        ) as response,
    ):
        token = (await response.json())["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"integrator_id": config.integrator_id}

    # Seeded people with a stored card: numbers 1, 2, 5, 6, 9, 10, ...
    profiles = [f"C{k:05d}" for k in range(1, 200) if k % 4 in (1, 2)]

    async def export_by_id(session: aiohttp.ClientSession, n: int) -> None:
        payload = {**body, "customer_id": profiles[n % len(profiles)]}
        async with session.post("/v1/customer/export", json=payload, headers=headers) as r:
            await r.read()
            assert r.status == 200, r.status

    async def sale(session: aiohttp.ClientSession, n: int) -> None:
        payload = {
            **body,
            "customer_id": "C00001",
            "amount": f"{10 + n % 1000}.{n % 100:02d}",
            "invoice_id": f"BENCH-{n}",
        }
        async with session.post(
            "/v1/transactions/sale/by_customer", json=payload, headers=headers
        ) as r:
            await r.read()
            assert r.status == 200, r.status

    return {"customer export (read)": export_by_id, "sale by customer (write)": sale}


# -- SBC --------------------------------------------------------------------------------


async def sbc_operations(base: str) -> dict[str, Operation]:
    from ledgerlink.sandbox.sbc import SbcConfig

    config = SbcConfig()
    redirect = "http://127.0.0.1:1/callback"
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{base}/oauth2/auth/central",
            params={
                "filter": "apiv3.1",
                "response_type": "code",
                "client_id": config.client_id,
                "redirect_uri": redirect,
                "scope": "full_access",
                "state": "bench",
            },
            allow_redirects=False,
        ) as response:
            code = parse_qs(urlparse(response.headers["Location"]).query)["code"][0]
        async with session.post(
            f"{base}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect,
                "client_id": config.client_id,
                "client_secret": config.client_secret,
            },
        ) as response:
            token = (await response.json())["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    async def list_contacts(session: aiohttp.ClientSession, n: int) -> None:
        params = {"items_per_page": "200", "attributes": "all", "page": str(1 + n % 2)}
        async with session.get("/v3.1/contacts", params=params, headers=headers) as r:
            await r.read()
            assert r.status == 200, r.status

    async def create_contact(session: aiohttp.ClientSession, n: int) -> None:
        contact = {
            "name": f"Bench Contact {n}",
            "contact_type_ids": ["CUSTOMER"],
            "reference": f"B{n:07d}",
            "idempotency_id": f"{n:032x}",
        }
        async with session.post("/v3.1/contacts", json={"contact": contact}, headers=headers) as r:
            await r.read()
            assert r.status in (200, 201), r.status

    async with aiohttp.ClientSession(base_url=base) as session:
        async with session.get("/v3.1/bank_accounts", headers=headers) as response:
            bank_id = (await response.json())["$items"][0]["id"]
        async with session.get(
            "/v3.1/contacts", params={"items_per_page": "200"}, headers=headers
        ) as response:
            contact_ids = [c["id"] for c in (await response.json())["$items"]]

    async def post_receipt(session: aiohttp.ClientSession, n: int) -> None:
        payment = {
            "transaction_type_id": "CUSTOMER_RECEIPT",
            "contact_id": contact_ids[n % len(contact_ids)],
            "bank_account_id": bank_id,
            "payment_method_id": "CREDIT_DEBIT",
            "date": time.strftime("%Y-%m-%d"),
            "total_amount": f"{1 + n % 500}.{n % 100:02d}",
            "reference": f"PayTrace {n}",
            "idempotency_id": f"{n + 10**12:032x}",
        }
        async with session.post(
            "/v3.1/contact_payments", json={"contact_payment": payment}, headers=headers
        ) as r:
            await r.read()
            assert r.status in (200, 201), r.status

    return {
        "contacts page of 200 (read)": list_contacts,
        "create contact (write)": create_contact,
        "post receipt on account (write)": post_receipt,
    }


SIMULATORS: dict[str, tuple[list[str], Callable[[str], Awaitable[dict[str, Operation]]]]] = {
    "paytrace": (["duplicate_window_seconds=0"], paytrace_operations),
    "sbc": (["rate_limit_per_minute=0", "auto_approve=true"], sbc_operations),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("systems", nargs="*", default=list(SIMULATORS))
    args = parser.parse_args()
    for system in args.systems:
        settings, operations_for = SIMULATORS[system]
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as var_dir:
            process = start(system, port, Path(var_dir), settings)
            try:
                base = f"http://127.0.0.1:{port}"
                operations = asyncio.run(operations_for(base))
                for name, operation in operations.items():
                    result = asyncio.run(drive(base, operation, args.seconds, args.connections))
                    print(
                        json.dumps(
                            {
                                "benchmark": "sandbox throughput",
                                "simulator": system,
                                "operation": name,
                                "connections": args.connections,
                                **result,
                                "simulator_peak_rss_kib": peak_rss_kib(process.pid),
                            }
                        ),
                        flush=True,
                    )
            finally:
                process.terminate()
                process.wait(timeout=10)


if __name__ == "__main__":
    main()
