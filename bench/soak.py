"""Soak: ledgerlink on PostgreSQL with N `ledgerlink worker` processes, steady payment
traffic with settlement bursts, a 100,000-member sync and reconciliation runs, while
workers are SIGKILLed, PostgreSQL restarts and the simulators misbehave; then counting in
the ledger simulator that nothing was lost or written twice.

    .venv/bin/python bench/soak.py                                  # 15 min each at 1, 2, 4
    .venv/bin/python bench/soak.py --minutes 3 --workers 1,2,4 --members 20000
    .venv/bin/python bench/soak.py --minutes 0.5 --workers 1 --members 500 --pairs 1x1

What runs (each its own process, all on 127.0.0.1): a private PostgreSQL server (port
55460, restarted once mid-run with ``pg_ctl restart -m fast``), the SBC simulator (the
ledger companies: one SBC business each, rate limit off), the PayTrace simulator (one API
account; ``--pairs GxL`` makes G PayTrace connections posting to L SBC connections, 10x10
by default), ``ledgerlink serve`` (the inbound endpoints; jobs never run there on
PostgreSQL) and N ``ledgerlink worker`` processes (procrastinate).

Traffic: every card sale is made in PayTrace before the clock starts; then, at ``--rate``
per second (``--burst-factor`` times that for 5 s every minute: a settlement's burst), each
sale is announced to ledgerlink as PayTrace would: mostly a signed webhook, some a silent
post (an unsigned hint ledgerlink reads back), some both, and some webhooks delivered
twice. A delivery not answered 2xx is sent again (as PayTrace retries) until it is. At 2 s
a member-details sync of ``--members`` linked members starts (as a job); reconciliation
runs of every pair's scope are queued at 40% and 90% of the run (the drain waits for them).

Faults (seconds from the start of traffic, scaled to the duration): a random worker
SIGKILLed every ``--kill-every`` seconds (default 60, first at 20 s) and started again at
once; SBC answering 10% 503 for a window, then 10% 429 (Retry-After 1), then 150-250 ms
latency; PostgreSQL restarted at half-time; PayTrace partitioned (every connection cut,
``partition_seconds``) for a minute or a fifth of the run, whichever is shorter.

End checks, counted in the SBC simulator's state file once everything stopped (see
``soak_checks.py``): every sale ledgerlink acknowledged is exactly one receipt, in its
pair's ledger (0 lost, 0 double); no receipt for a sale never sent; every member synced and
none written twice. The run exits 1 and says which check failed.

Output in ``--out`` (default ``var/soak``): ``soak.json`` (per worker count: throughput,
lag p50/p99, peak RSS of every process by role, the faults as they happened, the checks,
the per-second timeline; and the scaling curve) and ``soak.svg`` (throughput and lag over
time, one line per worker count, faults marked).

``--faults`` picks them (``all``, ``none`` for a baseline, or some of ``kill``,
``pg-restart``, ``sbc-503``, ``sbc-429``, ``sbc-latency``, ``partition``); ``--base-port``
moves the three HTTP ports (SBC, PayTrace, ledgerlink: 9460-9462 by default).

The payments lease (``LEDGERLINK_PAYMENTS_LEASE_SECONDS``, 120 s in production: how long a
SIGKILLed worker's claimed payments wait before another worker takes them) is 20 s here
(``--lease-seconds``) so a short run drains in minutes; the lag p99 includes those waits.
A killed worker's jobs (the sync, a reconciliation run) wait ``--job-lease-seconds``
(production's 30 s by default) before another worker takes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg
from cryptography.fernet import Fernet
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import soak_chart  # type: ignore[import-not-found]
import soak_checks  # type: ignore[import-not-found]
import soak_world  # type: ignore[import-not-found]
from payments import WEBHOOK_SECRET, server_env  # type: ignore[import-not-found]
from soak_postgres import PrivateServer  # type: ignore[import-not-found]
from standardwebhooks.webhooks import Webhook

from ledgerlink.identity.principal import cli_principal
from ledgerlink.logs import configure_logging
from ledgerlink.recon.jobs import RUN as RECON_RUN
from ledgerlink.recon.scopes import ensure_default_scopes
from ledgerlink.store.sync_models import SyncRun
from ledgerlink.sync import starting

PORTS = {"sbc": 9460, "paytrace": 9461, "serve": 9462}
ROOT = Path(__file__).resolve().parent.parent


# -- processes ------------------------------------------------------------------------------


@dataclass
class Fleet:
    """ledgerlink's processes and every pid seen per role (for peak RSS)."""

    env: dict[str, str]
    serve: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: Path = Path()
    peak_kib: dict[str, int] = field(default_factory=dict)
    started_workers: int = 0
    #: processes that ended without the soak asking (exit code, when), restarted at once
    #: as systemd's Restart=always or compose's restart policy would
    exits: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = 0.0

    def _popen(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "ledgerlink.cli", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def start_serve(self) -> None:
        self.serve = self._popen(
            ["serve", "--host", "127.0.0.1", "--port", str(PORTS["serve"]), "--no-worker"],
            "serve",
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("ledgerlink serve did not start; see serve.log in the run directory")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{PORTS['serve']}"

    def start_worker(self) -> subprocess.Popen[bytes]:
        self.started_workers += 1
        process = self._popen(["worker"], f"worker-{self.started_workers}")
        self.workers.append(process)
        return process

    def kill_random_worker(self, rng: random.Random) -> int:
        """SIGKILL one live worker and start another in its place; returns the killed pid."""
        with self.lock:
            live = [w for w in self.workers if w.poll() is None]
            victim = rng.choice(live)
            self.sample()
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            self.workers.remove(victim)
            self.start_worker()
            return victim.pid

    def supervise(self) -> list[str]:
        """Restart any worker or the server that ended on its own; returns what happened."""
        notes = []
        with self.lock:
            for process in list(self.workers):
                code = process.poll()
                if code is None:
                    continue
                self.workers.remove(process)
                self.start_worker()
                notes.append(self._exited("worker", process.pid, code))
            if self.serve is not None and (code := self.serve.poll()) is not None:
                notes.append(self._exited("serve", self.serve.pid, code))
                self.start_serve()
        return notes

    def _exited(self, role: str, pid: int, code: int) -> str:
        t = round(time.monotonic() - self.started, 1)
        self.exits.append({"t": t, "role": role, "pid": pid, "exit_code": code})
        note = f"{role} pid {pid} ended on its own (exit code {code}) at t={t}s; restarted"
        print(f"  WARNING: {note}", flush=True)
        return note

    def roles(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {"worker": [w.pid for w in self.workers if w.poll() is None]}
        if self.serve is not None and self.serve.poll() is None:
            found["serve"] = [self.serve.pid]
        return found

    def sample(self, extra: dict[str, list[int]] | None = None) -> None:
        for role, pids in {**self.roles(), **(extra or {})}.items():
            for pid in pids:
                self.peak_kib[role] = max(self.peak_kib.get(role, 0), _hwm_kib(pid))

    def stop(self) -> None:
        for process in [*self.workers, *([self.serve] if self.serve else [])]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.workers, *([self.serve] if self.serve else [])]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- traffic ----------------------------------------------------------------------------------


def schedule(
    rate: float, seconds: float, burst_factor: float, burst_every: float = 60.0
) -> list[float]:
    """Send times (seconds from the start) at ``rate``/s, ``burst_factor`` times that for
    5 s every ``burst_every`` s (a settlement's burst), from 40 s on."""
    times: list[float] = []
    t = 0.0
    while t < seconds:
        times.append(t)
        in_burst = t >= 40 and (t - 40) % burst_every < 5
        t += 1.0 / (rate * (burst_factor if in_burst else 1.0))
    return times


@dataclass
class Traffic:
    """What was sent and what ledgerlink acknowledged."""

    deliveries: int = 0
    retries: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)


async def send_all(
    base: str,
    sales: list[tuple[int, str, str]],
    times: list[float],
    started: float,
    rng: random.Random,
    give_up_at: float,
) -> Traffic:
    """Announce each sale at its time: 70% webhook, 20% silent post, 10% both; 5% of
    webhooks are delivered twice (the same webhook id). Retries until answered 2xx."""
    signer = Webhook(WEBHOOK_SECRET)
    traffic = Traffic()
    connector = aiohttp.TCPConnector(limit=128)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def deliver(url: str, transaction: str, **kw: Any) -> bool:
            delay = 0.2
            while time.monotonic() < give_up_at:
                traffic.deliveries += 1
                try:
                    async with session.post(url, **kw) as response:
                        await response.read()
                        if 200 <= response.status < 300:
                            return True
                        key = str(response.status)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    key = type(exc).__name__
                traffic.refused[key] = traffic.refused.get(key, 0) + 1
                traffic.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            return False

        async def webhook(gateway: int, transaction: str, invoice: str, twice: bool) -> bool:
            body = json.dumps(
                {
                    "type": "payment.sale",
                    "data": {
                        "transaction_id": transaction,
                        "amount": soak_world.SALE_AMOUNT,
                        "invoice_id": invoice,
                    },
                }
            )
            url = f"{base}/inbound/paytrace/{gateway}/webhook"
            ok = False
            for _ in range(2 if twice else 1):
                moment = datetime.now(UTC)
                headers = {
                    "webhook-id": f"msg_{transaction}",
                    "webhook-timestamp": str(int(moment.timestamp())),
                    "webhook-signature": signer.sign(f"msg_{transaction}", moment, body),
                    "content-type": "application/json",
                }
                ok = await deliver(url, transaction, data=body, headers=headers) or ok
            return ok

        async def silent_post(gateway: int, transaction: str, invoice: str) -> bool:
            form = {
                "parmList": f"TRANSACTIONID~{transaction}|TRANXTYPE~SALE|ORDERID~{invoice}|"
                f"AMOUNT~{soak_world.SALE_AMOUNT}|RESPONSECODE~101|"
                "MASKEDCARD~xxxxxxxxxxxx1111|"
            }
            url = f"{base}/inbound/paytrace/{gateway}/silent-post"
            return await deliver(url, transaction, data=form)

        async def announce(gateway: int, transaction: str, invoice: str) -> None:
            draw = rng.random()
            if draw < 0.7:
                ok = await webhook(gateway, transaction, invoice, rng.random() < 0.05)
            elif draw < 0.9:
                ok = await silent_post(gateway, transaction, invoice)
            else:
                results = await asyncio.gather(
                    webhook(gateway, transaction, invoice, False),
                    silent_post(gateway, transaction, invoice),
                )
                ok = any(results)
            if ok:
                traffic.acknowledged.add(transaction)

        pending: set[asyncio.Task[None]] = set()
        for (gateway, transaction, invoice), at in zip(sales, times, strict=False):
            delay = started + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(announce(gateway, transaction, invoice))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
    return traffic


# -- the fault timeline -----------------------------------------------------------------------


@dataclass
class Fault:
    at: float
    label: str
    action: Any  # Callable[[], str | None]: does it, returns a detail for the log
    end: float | None = None
    name: str = ""  # which --faults name turns it on ("" for clearing and workload events)


FAULT_NAMES = ("kill", "pg-restart", "sbc-503", "sbc-429", "sbc-latency", "partition")


def chosen_faults(text: str) -> set[str]:
    """``--faults``: all, none, or a comma-separated list of FAULT_NAMES."""
    if text == "all":
        return set(FAULT_NAMES)
    if text == "none":
        return set()
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(FAULT_NAMES)
    if unknown:
        raise SystemExit(
            f"--faults {text!r}: unknown {', '.join(sorted(unknown))}; use all, none or "
            f"some of {', '.join(FAULT_NAMES)}"
        )
    return names


def fault_plan(
    duration: float,
    kill_every: float,
    world: soak_world.World,
    fleet: Fleet,
    pg: PrivateServer,
    names: set[str],
) -> list[Fault]:
    rng = random.Random(22)
    window = max(8.0, min(30.0, duration * 0.08))
    partition = min(60.0, duration / 5)

    def faults(url: str, plan: dict[str, Any]) -> str:
        answer = httpx.put(f"{url}/_sandbox/faults", json=plan, timeout=10)
        answer.raise_for_status()
        return json.dumps(plan)

    def clear(url: str) -> str:
        httpx.delete(f"{url}/_sandbox/faults", timeout=10).raise_for_status()
        return "cleared"

    plan = [
        Fault(
            duration * 0.15,
            "SBC 503s",
            lambda: faults(world.sbc_url, {"error_rate": 0.1, "error_status": 503, "seed": 1}),
            end=duration * 0.15 + window,
            name="sbc-503",
        ),
        Fault(duration * 0.15 + window, "", lambda: clear(world.sbc_url), name="sbc-503"),
        Fault(
            duration * 0.3,
            "SBC 429s",
            lambda: faults(
                world.sbc_url, {"rate_limit_rate": 0.1, "retry_after_seconds": 1, "seed": 2}
            ),
            end=duration * 0.3 + window,
            name="sbc-429",
        ),
        Fault(duration * 0.3 + window, "", lambda: clear(world.sbc_url), name="sbc-429"),
        Fault(
            duration * 0.5,
            "PostgreSQL restart",
            lambda: f"{pg.restart():.2f} s",
            name="pg-restart",
        ),
        Fault(
            duration * 0.6,
            "SBC latency",
            lambda: faults(world.sbc_url, {"latency_ms": 150, "jitter_ms": 100, "seed": 3}),
            end=duration * 0.6 + window,
            name="sbc-latency",
        ),
        Fault(duration * 0.6 + window, "", lambda: clear(world.sbc_url), name="sbc-latency"),
        Fault(
            duration * 0.7,
            "PayTrace partition",
            lambda: faults(world.paytrace_url, {"partition_seconds": partition}),
            end=duration * 0.7 + partition,
            name="partition",
        ),
    ]
    t = min(20.0, duration / 3)
    while t < duration:
        plan.append(
            Fault(
                t,
                "SIGKILL worker",
                lambda: f"pid {fleet.kill_random_worker(rng)}",
                name="kill",
            )
        )
        t += kill_every
    return sorted((f for f in plan if f.name in names), key=lambda f: f.at)


def run_faults(
    plan: list[Fault], started: float, stop: threading.Event, happened: list[dict[str, Any]]
) -> None:
    for fault in plan:
        delay = started + fault.at - time.monotonic()
        if delay > 0 and stop.wait(delay):
            return
        t = time.monotonic() - started
        try:
            detail = fault.action()
        except Exception as exc:  # a fault that could not be applied is reported, not fatal
            detail = f"failed: {exc!r}"
        entry: dict[str, Any] = {"t": round(t, 1), "label": fault.label or "fault cleared"}
        if fault.end is not None:
            entry["end"] = round(fault.end, 1)
        entry["detail"] = detail
        happened.append(entry)
        print(f"  t={t:6.1f}s {entry['label']}: {detail}", flush=True)


# -- one run ----------------------------------------------------------------------------------


def enqueue_sync(runtime: Any, ledger_id: int) -> int:
    with runtime.db.transaction() as session:
        run = starting.start(
            session, runtime.jobs, cli_principal(), ledger_id, ["member_details"], trigger="soak"
        )
        return int(run.id)


def enqueue_recon(runtime: Any) -> list[int]:
    with runtime.db.transaction() as session:
        scopes = ensure_default_scopes(session, actor="soak")
        return [
            int(
                runtime.jobs.enqueue(session, RECON_RUN, {"scope_id": scope.id, "trigger": "soak"})
                or 0
            )
            for scope in scopes
        ]


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def wait_drained(
    dsn: str,
    sync_run: int | None,
    recon_jobs: list[int],
    deadline: float,
    fleet: Fleet,
    pg_pids: Any,
) -> dict[str, Any]:
    """Wait until no payment event waits, the sync run has ended and the reconciliation
    jobs the soak queued have ended; the last state seen, ``drained`` when all three."""
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        fleet.sample({"postgres": pg_pids()})
        fleet.supervise()
        try:
            with psycopg.connect(dsn, connect_timeout=5) as conn:
                waiting = conn.execute(
                    "SELECT COUNT(*) FROM payment_events WHERE status IN ('received', 'processing')"
                ).fetchone()
                sync = (
                    conn.execute(
                        "SELECT status, done, total FROM sync_runs WHERE id = %s", (sync_run,)
                    ).fetchone()
                    if sync_run
                    else None
                )
                recon = conn.execute(
                    "SELECT COUNT(*) FROM procrastinate_jobs WHERE id = ANY(%s) "
                    "AND status IN ('todo', 'doing')",
                    (recon_jobs,),
                ).fetchone()
        except psycopg.OperationalError:
            time.sleep(1)
            continue
        last = {
            "payments_waiting": int(waiting[0]) if waiting else 0,
            "sync": list(sync) if sync else None,
            "recon_jobs_waiting": int(recon[0]) if recon else 0,
        }
        sync_done = sync is None or sync[0] not in starting.ACTIVE
        if not last["payments_waiting"] and sync_done and not last["recon_jobs_waiting"]:
            return {**last, "drained": True}
        time.sleep(1)
    return last


def one_run(args: argparse.Namespace, workers: int, pg: PrivateServer, out: Path) -> dict[str, Any]:
    print(f"== {workers} worker(s): setting up", flush=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"soak-{workers}w-", dir=out))
    database_url = pg.create_database(f"soak_{workers}w")
    keys = Fernet.generate_key().decode()
    pairs = soak_world.Pairs.parse(args.pairs)
    began = time.monotonic()
    world = soak_world.build(run_dir, database_url, keys, pairs, args.members, PORTS)
    built = time.monotonic() - began
    duration = args.minutes * 60
    times = schedule(args.rate, duration, args.burst_factor)
    env = server_env(run_dir / "var", keys)
    env.update(
        LEDGERLINK_DATABASE_URL=database_url,
        LEDGERLINK_PAYMENTS_LEASE_SECONDS=str(args.lease_seconds),
        LEDGERLINK_JOB_LEASE_SECONDS=str(args.job_lease_seconds),
        LEDGERLINK_LOG_FORMAT="json",
    )
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    fleet = Fleet(env=env, logs=logs)
    runtime = soak_world.runtime_for(database_url, run_dir / "var", keys)
    result: dict[str, Any] = {"workers": workers}
    stop = threading.Event()
    sampler_stop = threading.Event()
    threads: list[threading.Thread] = []
    happened: list[dict[str, Any]] = []
    simulator_pids = {
        f"{name}_simulator": [p.pid] for name, p in world.simulators.items() if p.poll() is None
    }
    try:
        # ledgerlink starts (imports, first poll) while the sales are made
        fleet.start_serve()
        for _ in range(workers):
            fleet.start_worker()
        sales = asyncio.run(soak_world.card_sales(world, len(times)))
        fleet.wait_ready()
        setup_seconds = time.monotonic() - began
        print(
            f"   {len(sales)} card sales in PayTrace, {args.members} members, "
            f"{pairs.gateways}x{pairs.ledgers} pairs; set-up {setup_seconds:.0f} s "
            f"(simulators, database and connections {built:.0f} s)",
            flush=True,
        )
        started_wall = datetime.now(UTC)
        started = fleet.started = time.monotonic()
        lead = world.ledger_ids[0]
        plan = fault_plan(duration, args.kill_every, world, fleet, pg, chosen_faults(args.faults))
        plan.append(Fault(2.0, "sync started", lambda: f"run {enqueue_sync(runtime, lead)}"))
        plan.append(Fault(duration * 0.4, "recon queued", lambda: str(enqueue_recon(runtime))))
        plan.append(Fault(duration * 0.9, "recon queued", lambda: str(enqueue_recon(runtime))))
        plan.sort(key=lambda f: f.at)
        faults = threading.Thread(target=run_faults, args=(plan, started, stop, happened))
        faults.start()
        threads.append(faults)

        def sample_forever() -> None:
            while not sampler_stop.wait(1.0):
                fleet.sample({**simulator_pids, "postgres": pg.pids()})
                fleet.supervise()

        sampler = threading.Thread(target=sample_forever, daemon=True)
        sampler.start()
        threads.append(sampler)
        traffic = asyncio.run(
            send_all(
                fleet.base,
                sales,
                times,
                started,
                random.Random(7),
                give_up_at=started + duration + args.drain_minutes * 60,
            )
        )
        sending = time.monotonic() - started
        faults.join()
        print(f"   traffic sent in {sending:.0f} s; draining", flush=True)
        sync_run = next(
            (
                int(e["detail"].split()[-1])
                for e in happened
                if e["label"] == "sync started" and e["detail"].startswith("run")
            ),
            None,
        )
        recon_jobs = [
            job
            for e in happened
            if e["label"] == "recon queued" and e["detail"].startswith("[")
            for job in json.loads(e["detail"])
        ]
        drained = wait_drained(
            _dsn(database_url),
            sync_run,
            recon_jobs,
            time.monotonic() + args.drain_minutes * 60,
            fleet,
            pg.pids,
        )
        finished = time.monotonic() - started
        sampler_stop.set()
        fleet.sample({**simulator_pids, "postgres": pg.pids()})
        with runtime.db.read() as session:
            sync_row = session.get(SyncRun, sync_run) if sync_run else None
            sync_summary = (
                {"status": sync_row.status, "counts": sync_row.counts} if sync_row else None
            )
            recon = [
                list(r)
                for r in session.execute(
                    text("SELECT status, COUNT(*) FROM recon_runs GROUP BY status")
                ).all()
            ]
        line = soak_checks.timeline(_dsn(database_url), started_wall, traffic.acknowledged)
    finally:
        stop.set()
        sampler_stop.set()
        for thread in threads:  # nothing restarts or kills a process while they stop
            thread.join(timeout=120)
        fleet.stop()
        runtime.db.dispose()
        for process in world.simulators.values():
            process.terminate()
        for process in world.simulators.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    by_transaction = {t: g for g, t, _ in sales}
    business_of = {
        g: world.business_ids[n % pairs.ledgers] for n, g in enumerate(world.gateway_ids)
    }
    sent = {t: business_of[by_transaction[t]] for t in traffic.acknowledged}
    checks = soak_checks.count(world.state_dir, sent, args.members)
    if not drained.get("drained"):
        checks.undrained = (
            f"{drained.get('payments_waiting')} payment event(s) waiting, sync "
            f"{drained.get('sync')}, {drained.get('recon_jobs_waiting')} reconciliation "
            f"job(s) not ended after --drain-minutes {args.drain_minutes}"
        )
    lags = line.lags
    span = max(line.last_posted - line.first_received, 1e-9)
    steady = [v for v in line.posted_per_second[5 : int(duration)]] or [0]
    result.update(
        {
            "minutes": args.minutes,
            "offered_rate_per_second": args.rate,
            "burst_factor": args.burst_factor,
            "pairs": f"{pairs.gateways}x{pairs.ledgers}",
            "members": args.members,
            "setup_seconds": round(setup_seconds, 1),
            "sales": len(sales),
            "deliveries": traffic.deliveries,
            "deliveries_retried": traffic.retries,
            "refusals_by_answer": traffic.refused,
            "events_acknowledged": len(traffic.acknowledged),
            "events_posted": len(lags),
            "statuses": line.statuses,
            "throughput_per_second": round(len(lags) / span, 1),
            "throughput_during_traffic_per_second": round(sum(steady) / len(steady), 1),
            "peak_10s_throughput_per_second": round(
                max(
                    (
                        sum(line.posted_per_second[i : i + 10]) / 10
                        for i in range(max(1, len(line.posted_per_second) - 9))
                    ),
                    default=0,
                ),
                1,
            ),
            "lag_p50_s": round(soak_checks.percentile(lags, 0.5), 3) if lags else None,
            "lag_p99_s": round(soak_checks.percentile(lags, 0.99), 3) if lags else None,
            "lag_max_s": round(lags[-1], 3) if lags else None,
            "drained_after_s": round(finished, 1),
            "drain_state": drained,
            "sync": sync_summary,
            "recon_runs_by_status": recon,
            "peak_rss_mib": {k: round(v / 1024, 1) for k, v in sorted(fleet.peak_kib.items())},
            "workers_started": fleet.started_workers,
            "processes_ended_on_their_own": fleet.exits,
            "postgres_restart_seconds": [round(s, 2) for s in pg.restarts],
            "faults": happened,
            "checks": checks.as_json(),
            "timeline": {
                "seconds": line.seconds,
                "posted_per_second": line.posted_per_second,
                "lag_p99_seconds": line.lag_p99_seconds,
            },
            "run_dir": str(run_dir),
        }
    )
    pg.restarts.clear()
    summary = {k: v for k, v in result.items() if k not in ("timeline", "faults")}
    print(json.dumps(summary, indent=1), flush=True)
    return result


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="traffic per worker count")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, run in turn")
    parser.add_argument("--rate", type=float, default=100.0, help="payments per second")
    parser.add_argument("--burst-factor", type=float, default=3.0)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--pairs", default="10x10", help="PayTrace connections x ledgers")
    parser.add_argument("--kill-every", type=float, default=60.0, help="seconds")
    parser.add_argument("--lease-seconds", type=float, default=20.0)
    parser.add_argument(
        "--job-lease-seconds",
        type=float,
        default=30.0,
        help="how long a killed worker's jobs wait before another takes them (production's 30)",
    )
    parser.add_argument("--drain-minutes", type=float, default=6.0)
    parser.add_argument(
        "--faults",
        default="all",
        help=f"all (the default), none (a baseline), or some of {','.join(FAULT_NAMES)}",
    )
    parser.add_argument(
        "--base-port",
        type=int,
        default=9460,
        help="the SBC simulator's port; PayTrace's and ledgerlink's are the next two",
    )
    parser.add_argument("--pg-port", type=int, default=55460)
    parser.add_argument(
        "--keep-database",
        action="store_true",
        help="leave PostgreSQL running at the end (each worker count's database, to look into)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "soak")
    args = parser.parse_args(argv)
    try:
        counts = [int(n) for n in args.workers.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--workers {args.workers!r}: a comma-separated list of counts, e.g. 1,2,4")
    if not counts or min(counts) < 1:
        parser.error("--workers: at least one worker")
    chosen_faults(args.faults)
    configure_logging("warning", "console")
    PORTS.update(sbc=args.base_port, paytrace=args.base_port + 1, serve=args.base_port + 2)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.pop("LEDGERLINK_DATABASE_URL", None)
    # SIGTERM unwinds like Ctrl-C, so the servers and workers started here are stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    pg = PrivateServer(args.pg_port)
    pg.start()
    runs: list[dict[str, Any]] = []
    broken: list[str] = []
    try:
        for workers in counts:
            try:
                runs.append(one_run(args, workers, pg, args.out))
            except Exception as exc:  # one worker count that could not run: say so, go on
                broken.append(f"{workers} worker(s) could not run: {exc!r}")
                traceback.print_exc()
                print(f"ERROR: {broken[-1]}", file=sys.stderr, flush=True)
            write_report(args, runs, argv)
    finally:
        if args.keep_database:
            print(f"PostgreSQL left running on port {args.pg_port} ({pg.root})", flush=True)
        else:
            pg.stop()
    failed = broken + [
        f"{r['workers']} worker(s): {failure}" for r in runs for failure in r["checks"]["failures"]
    ]
    for failure in failed:
        print(f"CHECK FAILED: {failure}", file=sys.stderr, flush=True)
    for r in runs:
        for ended in r["processes_ended_on_their_own"]:
            print(
                f"WARNING: {r['workers']} worker(s): {ended['role']} pid {ended['pid']} ended on "
                f"its own at t={ended['t']}s (exit code {ended['exit_code']}); the soak "
                "restarted it",
                file=sys.stderr,
                flush=True,
            )
    if not failed:
        print("all end checks passed: 0 lost, 0 double, no member written twice", flush=True)
    return 1 if failed else 0


def write_report(args: argparse.Namespace, runs: list[dict[str, Any]], argv: Any) -> None:
    """soak.json and soak.svg for the runs so far (rewritten after each worker count)."""
    faults = [
        {k: f[k] for k in ("t", "end", "label") if k in f}
        for f in (runs[0]["faults"] if runs else [])
        if f["label"] != "fault cleared"
    ]
    report = {
        "benchmark": "soak",
        "machine": {"cpus": os.cpu_count(), "shared": "yes: other engineers' tests ran too"},
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "scaling": [
            {
                "workers": r["workers"],
                "throughput_per_second": r["throughput_per_second"],
                "throughput_during_traffic_per_second": r["throughput_during_traffic_per_second"],
                "lag_p50_s": r["lag_p50_s"],
                "lag_p99_s": r["lag_p99_s"],
            }
            for r in runs
        ],
        "runs": runs,
    }
    (args.out / "soak.json").write_text(json.dumps(report, indent=1) + "\n")
    soak_chart.write(args.out / "soak.svg", runs, faults)
    print(f"wrote {args.out / 'soak.json'} and {args.out / 'soak.svg'}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
