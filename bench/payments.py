"""Payments: inbound events durably accepted per second (and their latency), and the lag
from a payment arriving to its receipt posted in the ledger at a steady rate.

    .venv/bin/python bench/payments.py inbound [--seconds 10] [--connections 32]
    .venv/bin/python bench/payments.py lag [--rate 200] [--seconds 20] [--worker separate]

``inbound``: ``ledgerlink serve`` runs as users run it (embedded default: SQLite, its own
process, here without the job runner so only acceptance is measured) with a PayTrace
connection; aiohttp posts PayTrace silent posts (``parmList``), each a new transaction,
for a fixed time. An event counts once the endpoint answered 200, which it does only
after the event is committed to the inbox. The same client then drives the floor: a bare
Starlette app under the same uvicorn set-up (its own process, the same options as
``ledgerlink serve``) that inserts and commits each body into SQLite (WAL,
``synchronous=NORMAL`` as ledgerlink's) and does nothing else; the JSON has both figures
and ledgerlink's share of the floor (``ratio``).

``lag``: the SBC simulator (its own process, rate limit off, seeded contacts with open
invoices), the PayTrace simulator (its own process) holding a card sale for each payment
(made before the clock starts), ``ledgerlink serve`` with its embedded job runner, and
signed webhooks for those sales sent at a steady ``--rate`` per second. Each webhook is
read back from PayTrace before it is posted, as in production. The lag of a payment is
from its arrival in the inbox to the ledger acknowledging the receipt
(``processed_at - received_at``); every payment must end posted.

The inbound endpoints' rate limits (``LEDGERLINK_INBOUND_LIMIT_*``) are turned off here:
the benchmarks measure how fast ledgerlink accepts, not the limit an installation sets.

Each prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from connector_throughput import free_port, peak_rss_kib  # type: ignore[import-not-found]


def server_env(var_dir: Path, vault_keys: str, database_url: str = "") -> dict[str, str]:
    """The environment of a `ledgerlink` process using ``var_dir`` and these vault keys
    (and ``database_url``: empty is SQLite in ``var_dir``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINK_")}
    env.update(
        LEDGERLINK_VAR_DIR=str(var_dir),
        LEDGERLINK_DATABASE_URL=database_url,
        LEDGERLINK_VAULT_KEYS=vault_keys,
        LEDGERLINK_LOG_LEVEL="warning",
        LEDGERLINK_INBOUND_LIMIT_PER_ADDRESS="",
        LEDGERLINK_INBOUND_LIMIT_PER_CONNECTION="",
    )
    return env


def prepare(var_dir: Path) -> tuple[dict[str, str], int]:
    from cryptography.fernet import Fernet

    from ledgerlink import connections
    from ledgerlink.identity.principal import cli_principal
    from ledgerlink.runtime import Runtime
    from ledgerlink.settings import Settings
    from ledgerlink.store.migrate import upgrade

    keys = Fernet.generate_key().decode()
    env = server_env(var_dir, keys)
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


def start_ledgerlink(
    env: dict[str, str], *, worker: bool, port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = port or free_port()
    command = [sys.executable, "-m", "ledgerlink.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port)] + ([] if worker else ["--no-worker"])
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return server, wait_ready(server, f"http://127.0.0.1:{port}")


def wait_ready(server: subprocess.Popen[bytes], base: str) -> str:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise RuntimeError(f"the server at {base} did not start")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def measure(server: subprocess.Popen[bytes], url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Drive ``url`` for ``args.seconds``: throughput, latency and each side's CPU share."""
    client_before, server_before = cpu_seconds(os.getpid()), cpu_seconds(server.pid)
    accepted, elapsed, latencies = asyncio.run(drive(url, args.seconds, args.connections))
    client_cpu = cpu_seconds(os.getpid()) - client_before
    server_cpu = cpu_seconds(server.pid) - server_before
    latencies.sort()
    return {
        "seconds": round(elapsed, 2),
        "events_accepted": accepted,
        "events_per_second": round(accepted / elapsed),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "server_peak_rss_mib": round(peak_rss_kib(server.pid) / 1024, 1),
        # Everything shares the machine's cores: how busy each side was.
        "server_cpu_share": round(server_cpu / elapsed, 2),
        "load_generator_cpu_share": round(client_cpu / elapsed, 2),
        # What an event costs the server, which other load on the machine changes less.
        "server_cpu_us_per_event": round(server_cpu / max(accepted, 1) * 1e6),
    }


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=15)


def bench_inbound(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp:
        env, connection_id = prepare(Path(tmp) / "var")
        server, base = start_ledgerlink(env, worker=False, port=args.port)
        try:
            ours = measure(server, f"{base}/inbound/paytrace/{connection_id}/silent-post", args)
        finally:
            stop(server)
        from ledgerlink.store.db import Database

        db = Database(f"sqlite:///{Path(tmp) / 'var' / 'ledgerlink.db'}")
        with db.engine.connect() as conn:
            ours["events_stored"] = conn.exec_driver_sql(
                "SELECT COUNT(*) FROM payment_events"
            ).scalar()
        db.dispose()
        bare_db = Path(tmp) / "bare.db"
        server, base = start_bare(bare_db, port=args.port + 1 if args.port else None)
        try:
            bare = measure(server, f"{base}/inbound", args)
        finally:
            stop(server)
        with sqlite3.connect(bare_db) as conn:
            bare["events_stored"] = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        print(
            json.dumps(
                {
                    "benchmark": "payments inbound",
                    "database": "sqlite (embedded default)",
                    "connections": args.connections,
                    "ledgerlink": ours,
                    "bare_starlette_sqlite": bare,
                    "ratio": round(ours["events_per_second"] / bare["events_per_second"], 2),
                }
            ),
            flush=True,
        )


def bare_app(database: Path) -> Any:
    """The floor: a Starlette app that inserts and commits each body into SQLite (one
    transaction a request, in the event loop) and answers ``OK`` — no checks at all."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    conn = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")

    async def accept(request: Request) -> PlainTextResponse:
        body = await request.body()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO events (body) VALUES (?)", (body,))
        conn.execute("COMMIT")
        return PlainTextResponse("OK")

    async def ready(request: Request) -> PlainTextResponse:
        return PlainTextResponse("OK")

    return Starlette(routes=[Route("/inbound", accept, methods=["POST"]), Route("/readyz", ready)])


def serve_bare(args: argparse.Namespace) -> None:
    """The bare app under uvicorn with ``ledgerlink serve``'s options."""
    import uvicorn

    uvicorn.run(
        bare_app(Path(args.database)),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


def start_bare(database: Path, *, port: int | None) -> tuple[subprocess.Popen[bytes], str]:
    port = port or free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "bare-serve", "--port", str(port), "--database", str(database)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return server, wait_ready(server, f"http://127.0.0.1:{port}")


WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"ledgerlink-bench-webhook-secret!").decode()


def prepare_lag(
    tmp: Path, people: int, database_url: str, ports: list[int]
) -> tuple[dict[str, str], int, list[tuple[str, int]], str, list[Any]]:
    """SBC and PayTrace simulators, ledgerlink's connections to them; the open invoices."""
    from connector_throughput import connected_ledger, start_sbc
    from cryptography.fernet import Fernet
    from sandbox_throughput import start as start_simulator

    from ledgerlink import connections
    from ledgerlink.identity.principal import cli_principal
    from ledgerlink.runtime import Runtime
    from ledgerlink.sandbox.paytrace import PayTraceConfig
    from ledgerlink.settings import Settings
    from ledgerlink.store.migrate import upgrade

    sbc_port, paytrace_port = ports
    sbc = start_sbc(tmp / "sandbox", sbc_port, ["rate_limit_per_minute=0", f"seed_people={people}"])
    paytrace = start_simulator(
        "paytrace", paytrace_port, tmp / "paytrace", ["duplicate_window_seconds=0", "seed_people=0"]
    )
    paytrace_url = f"http://127.0.0.1:{paytrace_port}"
    runtime = Runtime(
        Settings(
            var_dir=tmp / "var",
            database_url=database_url,
            vault_keys=Fernet.generate_key().decode(),
            log_level="warning",
            _env_file=None,  # type: ignore[call-arg]
        )
    )
    upgrade(runtime.db)
    ledger = connected_ledger(runtime, f"http://127.0.0.1:{sbc_port}", 0)

    async def open_invoices() -> list[tuple[str, int]]:
        try:
            return [(i.number, i.outstanding.minor) async for i in ledger.invoices()]
        finally:
            await ledger.aclose()

    invoices = asyncio.run(open_invoices())
    account = PayTraceConfig()
    with runtime.db.transaction() as session:
        from sqlalchemy import select

        from ledgerlink.store.models import Connection

        sbc_id = session.scalar(select(Connection.id).where(Connection.kind == "sbc"))
        gateway = connections.create(
            session,
            runtime.vault,
            cli_principal(),
            kind="paytrace",
            name="PayTrace",
            settings={
                "username": account.username,
                "integrator_id": account.integrator_id,
                "api_base_url": paytrace_url,
                "post_to_connection_id": sbc_id,
                "polling": False,
            },
            secrets={"password": account.password, "webhook_secret": WEBHOOK_SECRET},
        )
        session.flush()
        gateway_id = int(gateway.id)
    keys = runtime.settings.vault_keys.get_secret_value()
    runtime.db.dispose()
    env = server_env(tmp / "var", keys, database_url)
    return env, gateway_id, invoices, paytrace_url, [sbc, paytrace]


async def card_sales(paytrace_url: str, invoices: list[tuple[str, int]], count: int) -> list[Any]:
    """``count`` card sales of 5 cents in PayTrace, spread over the open invoices (as many
    as each has room for): [(transaction id, invoice number)]."""
    from ledgerlink.sandbox.paytrace import PayTraceConfig

    account = PayTraceConfig()
    room = {number: minor for number, minor in invoices if minor >= 5}
    numbers = sorted(room)
    wanted: list[str] = []
    for n in itertools.count():
        if len(wanted) == count or not any(minor >= 5 for minor in room.values()):
            break
        invoice = numbers[n % len(numbers)]
        if room[invoice] >= 5:
            room[invoice] -= 5
            wanted.append(invoice)
    async with httpx.AsyncClient(base_url=paytrace_url, timeout=30) as client:
        token = (
            await client.post(
                "/oauth/token",
                data={
                    "grant_type": "password",
                    "username": account.username,
                    "password": account.password,
                },
            )
        ).json()["access_token"]
        limit = asyncio.Semaphore(16)

        async def sale(invoice: str) -> tuple[str, str]:
            async with limit:
                body = {
                    "integrator_id": account.integrator_id,
                    "amount": "0.05",
                    "invoice_id": invoice,
                    "credit_card": {
                        "number": "4111111111111111",
                        "expiration_month": "12",
                        "expiration_year": "2030",
                    },
                }
                answer = await client.post(
                    "/v1/transactions/sale/keyed",
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                )
                return str(answer.json()["transaction_id"]), invoice

        return list(await asyncio.gather(*(sale(invoice) for invoice in wanted)))


def wait_until_done(db: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with db.engine.connect() as conn:
            waiting = conn.exec_driver_sql(
                "SELECT COUNT(*) FROM payment_events WHERE status IN ('received', 'processing')"
            ).scalar()
        if not waiting:
            return
        time.sleep(0.2)


async def pace(url: str, rate: float, sales: list[Any], first: int = 0) -> int:
    """Signed payment webhooks for PayTrace's ``sales`` at a steady ``rate`` per second."""
    from standardwebhooks.webhooks import Webhook

    signer = Webhook(WEBHOOK_SECRET)
    sent = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        began = time.perf_counter()
        pending: set[asyncio.Task[None]] = set()

        async def send(n: int, transaction_id: str, invoice: str) -> None:
            body = json.dumps(
                {
                    "type": "payment.sale",
                    "data": {
                        "transaction_id": transaction_id,
                        "amount": "0.05",
                        "invoice_id": invoice,
                    },
                }
            )
            moment = datetime.now(UTC)
            headers = {
                "webhook-id": f"msg_{first + n}",
                "webhook-timestamp": str(int(moment.timestamp())),
                "webhook-signature": signer.sign(f"msg_{first + n}", moment, body),
                "content-type": "application/json",
            }
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                assert response.status in (200, 202), response.status

        for n, (transaction_id, invoice) in enumerate(sales):
            delay = began + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(send(n, transaction_id, invoice))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        await asyncio.gather(*pending)
    return sent


class PostgresServer:
    """A private PostgreSQL server for the benchmark (a data directory in memory, the
    ``postgres`` user when we are root, as the tests start theirs), on ``port``."""

    def __init__(self, port: int) -> None:
        import glob

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
        if not found:
            raise SystemExit("PostgreSQL server binaries not found (Debian's postgresql)")
        self.bin = Path(found[0]).parent
        self.port = port
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.root = Path(tempfile.mkdtemp(prefix="ledgerlink-bench-pg-", dir=shm))
        self.data = self.root / "data"

    def _run(self, *args: str, check: bool = True) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=check, capture_output=True)

    def __enter__(self) -> str:
        import shutil

        sockets = self.root / "sock"
        sockets.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(sockets, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={sockets} -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        return url

    def __exit__(self, *_: object) -> None:
        import shutil

        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def pids(self) -> list[int]:
        """The postmaster and every backend it started (their CPU is the database's)."""
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                continue
        return [postmaster, *children]


def group_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            continue
    return total


def bench_lag(args: argparse.Namespace) -> None:
    if args.database == "postgresql":
        pg = PostgresServer(args.pg_port)
        with pg as url:
            run_lag(args, url, pg)
    else:
        run_lag(args, "", None)


def run_lag(args: argparse.Namespace, database_url: str, pg: PostgresServer | None) -> None:
    from sqlalchemy import text

    from ledgerlink.store.db import Database

    ports = iter(range(args.port, args.port + 10)) if args.port else None

    def port() -> int:
        return next(ports) if ports is not None else free_port()

    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp_name:
        tmp = Path(tmp_name)
        postgresql = bool(database_url)
        env, gateway_id, invoices, paytrace_url, simulators = prepare_lag(
            tmp, args.people, database_url, [port(), port()]
        )
        sales = asyncio.run(card_sales(paytrace_url, invoices, 1 + int(args.rate * args.seconds)))
        warm_up, sales = sales[:1], sales[1:]
        workers = args.workers or (2 if postgresql else 1)
        if not postgresql and args.worker == "embedded":
            workers = 0
        server, base = start_ledgerlink(env, worker=workers == 0, port=port())
        worker_processes = [
            subprocess.Popen(
                [sys.executable, "-m", "ledgerlink.cli", "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        db = Database(database_url or f"sqlite:///{tmp / 'var' / 'ledgerlink.db'}")
        try:
            url = f"{base}/inbound/paytrace/{gateway_id}/webhook"
            # One payment first, so the figures are for the steady state, not the worker's
            # start (loading code, opening the ledger, the first token).
            asyncio.run(pace(url, 1, warm_up, first=10**6))
            wait_until_done(db, 60)
            groups = {
                "server (inbound)": lambda: [server.pid],
                "workers (jobs: planning, read-back, posting)": lambda: [
                    w.pid for w in worker_processes
                ],
                "sbc simulator (the ledger)": lambda: [simulators[0].pid],
                "paytrace simulator (read-back)": lambda: [simulators[1].pid],
                "postgresql": pg.pids if pg is not None else list,
                "load generator": lambda: [os.getpid()],
            }
            cpu_before = {name: group_cpu(pids()) for name, pids in groups.items()}
            started = time.perf_counter()
            sent = asyncio.run(pace(url, args.rate, sales))
            sending = time.perf_counter() - started
            wait_until_done(db, 300)
            finished = time.perf_counter() - started
            cpu = {name: group_cpu(pids()) - cpu_before[name] for name, pids in groups.items()}
            with db.engine.connect() as conn:
                statuses = dict(
                    conn.execute(
                        text("SELECT status, COUNT(*) FROM payment_events GROUP BY status")
                    ).all()
                )
                rows = conn.execute(
                    text(
                        "SELECT received_at, processed_at FROM payment_events "
                        "WHERE status = 'posted' AND transaction_id != :warm"
                    ),
                    {"warm": warm_up[0][0]},
                ).all()
            timed = sorted(
                (
                    datetime.fromisoformat(str(got)),
                    (
                        datetime.fromisoformat(str(done)) - datetime.fromisoformat(str(got))
                    ).total_seconds(),
                )
                for got, done in rows
            )
            lags = sorted(lag for _, lag in timed)
            windows: dict[int, list[float]] = {}
            for got, lag in timed:
                windows.setdefault(int((got - timed[0][0]).total_seconds() // 5), []).append(lag)
            posted = len(rows)
            print(
                json.dumps(
                    {
                        "benchmark": "payments lag",
                        "database": "postgresql (private server)"
                        if postgresql
                        else "sqlite (embedded default)",
                        "job_runner": f"{workers} x ledgerlink worker"
                        + (" (procrastinate)" if postgresql else " (embedded runner)")
                        if workers
                        else "embedded in ledgerlink serve",
                        "ledger": "SBC simulator (own process, rate limit off)",
                        "gateway": "PayTrace simulator (own process): each webhook read back",
                        "rate_per_second": args.rate,
                        "payments_sent": sent,
                        "send_seconds": round(sending, 2),
                        # sent until the last one posted: the rate actually sustained
                        "posted_per_second": round(posted / finished, 1),
                        "statuses": statuses,
                        "lag_p50_s": round(percentile(lags, 0.5), 3) if lags else None,
                        "lag_p99_s": round(percentile(lags, 0.99), 3) if lags else None,
                        "lag_max_s": round(lags[-1], 3) if lags else None,
                        "lag_p99_s_per_5s_window": [
                            round(percentile(sorted(w), 0.99), 2)
                            for _, w in sorted(windows.items())
                        ],
                        # CPU each part spent per payment posted (milliseconds): where the
                        # ceiling is on a machine whose cores they all share.
                        "cpu_ms_per_payment": {
                            name: round(seconds / max(posted, 1) * 1000, 2)
                            for name, seconds in cpu.items()
                        },
                        "cpu_share_of_machine": round(
                            sum(cpu.values()) / finished / (os.cpu_count() or 1), 2
                        ),
                        "server_peak_rss_mib": round(peak_rss_kib(server.pid) / 1024, 1),
                        "worker_peak_rss_mib": [
                            round(peak_rss_kib(w.pid) / 1024, 1) for w in worker_processes
                        ],
                    }
                ),
                flush=True,
            )
        finally:
            db.dispose()
            for process in worker_processes:
                process.terminate()
            for process in worker_processes:
                process.wait(timeout=30)
            server.terminate()
            server.wait(timeout=15)
            for simulator in simulators:
                simulator.terminate()
                simulator.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    inbound = commands.add_parser("inbound", help="events/s accepted and their latency")
    inbound.add_argument("--seconds", type=float, default=10.0)
    inbound.add_argument("--connections", type=int, default=32)
    inbound.add_argument(
        "--port", type=int, help="ledgerlink's port; the bare app's is the next (default: free)"
    )
    bare = commands.add_parser("bare-serve", help="(used by inbound) serve the bare app")
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--database", required=True)
    lag = commands.add_parser("lag", help="payment → posted receipt lag at a steady rate")
    lag.add_argument("--rate", type=float, default=200.0)
    lag.add_argument("--seconds", type=float, default=20.0)
    lag.add_argument("--people", type=int, default=600)
    lag.add_argument(
        "--worker",
        choices=("embedded", "separate"),
        default="embedded",
        help="SQLite: jobs in the serve process (the default) or in `ledgerlink worker`",
    )
    lag.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    lag.add_argument(
        "--workers",
        type=int,
        default=0,
        help="`ledgerlink worker` processes (PostgreSQL, or SQLite with --worker separate)",
    )
    lag.add_argument("--pg-port", type=int, default=55500, help="the private PostgreSQL's port")
    lag.add_argument("--port", type=int, help="first of the 3 ports used (default: free ones)")
    args = parser.parse_args()
    {"inbound": bench_inbound, "lag": bench_lag, "bare-serve": serve_bare}[args.command](args)


if __name__ == "__main__":
    main()
