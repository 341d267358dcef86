"""Real-time registry → SBC: how long a member change takes to reach its SBC contact
under a steady stream of changes, with the SBC simulator's rate limit on.

    .venv/bin/python bench/realtime.py                      # 50 changes/s for 60 s
    .venv/bin/python bench/realtime.py --seconds 20 --members 100

Set-up (not timed): the SBC simulator in its own process with its default limits (100
requests a minute per business, as Sage's API; ``--sbc-limit`` changes it), seeded with
``--members`` contacts; ledgerlink's SQLite database with the same people as members,
each linked to its contact, and the SBC connection authorised through the consent page
with its client-side throttle at the same 100 a minute; then ``ledgerlink serve`` with
its embedded job runner, as an installation runs it, and an API token.

Timed: ``--rate`` member changes a second (each a new e-mail address, round robin over
the members) for ``--seconds``, each a ``PUT /api/v1/members/{number}`` as an external
member system would send it. Then the bench waits until nothing is left waiting (at
most ``--drain`` seconds) and reads the live feed: a write's lag runs from the oldest
change it carries (when the member became dirty) to its commit after SBC answered, so
the figures are the worst case of the changes each write covers. SBC → registry
polling (RT-IN) stays on as installed (``--polling off`` to measure the writes alone);
its records are not counted in the lag.

Prints one JSON object: changes sent and accepted, contact writes, lag p50/p99/max,
writes a second, SBC requests refused with 429, peak RSS of ledgerlink and of SBC.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from connector_throughput import peak_rss_kib, start_sbc  # type: ignore[import-not-found]

SBC_LIMIT = 100  # requests a minute per business: Sage's, and the simulator's default
IN_FLIGHT = 16  # API requests open at once, as a member system's client pool would


def server_env(var_dir: Path, vault_keys: str) -> dict[str, str]:
    """The environment of a `ledgerlink` process using ``var_dir`` and these vault keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINK_")}
    env.update(LEDGERLINK_VAR_DIR=str(var_dir), LEDGERLINK_VAULT_KEYS=vault_keys)
    return env


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


def port_free(port: int) -> bool:
    """Nothing listens on ``port`` (else the simulator would not start, and the bench
    would talk to whatever holds it)."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def prepare(
    var_dir: Path, sbc_url: str, members: int, *, polling: bool
) -> tuple[dict[str, str], str, list[dict[str, str]]]:
    """The database, the linked members, the authorised connection; the server's
    environment, an operator's API token and each member as the API takes it."""
    from cryptography.fernet import Fernet
    from sqlalchemy import insert, select

    from ledgerlink import connections, demo
    from ledgerlink.connectors.factory import ledger_for
    from ledgerlink.identity import users
    from ledgerlink.identity.principal import cli_principal
    from ledgerlink.identity.roles import Role
    from ledgerlink.members import registry
    from ledgerlink.runtime import Runtime
    from ledgerlink.sandbox.supervisor import SimulatorAddress
    from ledgerlink.settings import Settings
    from ledgerlink.store.member_models import MemberLinkRow, MemberRow
    from ledgerlink.store.migrate import upgrade
    from ledgerlink.store.models import Connection
    from ledgerlink.sync import realtime_inbound

    keys = Fernet.generate_key().decode()
    env = server_env(var_dir, keys)
    runtime = Runtime(Settings(var_dir=var_dir, vault_keys=keys, _env_file=None))  # type: ignore[call-arg]
    upgrade(runtime.db)
    me = cli_principal()
    with runtime.db.transaction() as session:
        demo.ensure_members(session, count=members)
        user = users.create_user(
            session, me, email="bench@example.org", password="bench-password-1", role=Role.OPERATOR
        )
        _, token = users.issue_api_token(session, me, user, name="bench")
    where = {"sbc": SimulatorAddress("sbc", sbc_url)}
    with runtime.db.transaction() as session:
        demo.ensure_connections(runtime, session, demo.sandbox_connections(runtime, where))
    demo.connect_sbc_sandbox(runtime, where)
    with runtime.db.transaction() as session:
        connection = session.scalars(select(Connection).where(Connection.kind == "sbc")).one()
        connections.update(
            session, runtime.vault, me, connection, settings={"rate_limit_per_minute": SBC_LIMIT}
        )
        session.flush()
        session.expunge(connection)

    async def contacts() -> dict[str, str]:
        """member number → contact id: the seeded contacts carry the number as reference."""
        async with ledger_for(runtime, connection) as ledger:
            return {c.number: c.id async for c in ledger.customers()}

    by_number = asyncio.run(contacts())
    with runtime.db.transaction() as session:
        rows = session.execute(select(MemberRow.id, MemberRow.number)).all()
        session.execute(
            insert(MemberLinkRow),
            [
                {
                    "member_id": member_id,
                    "connection_id": connection.id,
                    "system": "sbc",
                    "customer_id": by_number[number],
                    "customer_number": number,
                    "linked_by": me.actor,
                }
                for member_id, number in rows
                if number in by_number
            ],
        )
        # SBC → registry polling (RT-IN) as installed (on), or off to measure writes alone
        realtime_inbound.poll_state(session, connection.id).enabled = polling
        bodies = [
            asdict(registry.member_fields(registry.load_member(session, row)))
            for row in session.scalars(select(MemberRow).order_by(MemberRow.number))
        ]
    runtime.db.dispose()
    return env, token, bodies


async def drive(
    base: str, token: str, bodies: list[dict[str, str]], rate: float, seconds: float
) -> tuple[int, int, list[float]]:
    """``rate`` changes a second for ``seconds``; (sent, accepted, seconds each took)."""
    sent = accepted = 0
    took: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=60, limits=limits
    ) as client:

        async def change(n: int) -> None:
            nonlocal accepted
            body = dict(bodies[n % len(bodies)])
            body["email"] = f"change{n}@example.org"
            began = time.perf_counter()
            try:
                response = await client.put(f"/api/v1/members/{body['member_number']}", json=body)
            except httpx.HTTPError:
                return  # counted as not accepted
            took.append(time.perf_counter() - began)
            if response.status_code == 200:
                accepted += 1

        pending: set[asyncio.Task[None]] = set()
        began = time.perf_counter()
        n = 0
        while (elapsed := time.perf_counter() - began) < seconds:
            due = int(elapsed * rate) + 1
            while n < due:
                task = asyncio.create_task(change(n))
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
                sent += 1
            await asyncio.sleep(max(0.0, (n / rate) - (time.perf_counter() - began)))
        await asyncio.gather(*pending)
    return sent, accepted, took


def wait_drained(db: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    with db.engine.connect() as conn:
        while time.monotonic() < deadline:
            if not conn.exec_driver_sql("SELECT COUNT(*) FROM realtime_outbox").scalar():
                return True
            conn.rollback()
            time.sleep(0.5)
    return False


def percentile(ordered: list[int], share: float) -> int:
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="member changes a second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long changes are sent")
    parser.add_argument("--members", type=int, default=50, help="members the changes touch")
    parser.add_argument("--drain", type=float, default=600.0, help="longest wait afterwards")
    parser.add_argument("--sbc-limit", type=int, default=SBC_LIMIT, help="simulator req/min")
    parser.add_argument("--sbc-port", type=int, default=9401)
    parser.add_argument("--port", type=int, default=9402, help="ledgerlink serve")
    parser.add_argument("--log-level", default="warning", help="ledgerlink serve's log")
    parser.add_argument(
        "--polling", choices=("on", "off"), default="on", help="SBC → registry polling"
    )
    parser.add_argument("--keep-log", type=Path, help="copy ledgerlink serve's log here")
    args = parser.parse_args()

    from ledgerlink.store.db import Database

    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if not port_free(args.sbc_port) or not port_free(args.port):
            raise SystemExit(f"port {args.sbc_port} or {args.port} is taken: choose others")
        sbc = start_sbc(
            tmp / "sbc",
            args.sbc_port,
            [f"seed_people={args.members}", f"rate_limit_per_minute={args.sbc_limit}"],
        )
        server = None
        try:
            sbc_url = f"http://127.0.0.1:{args.sbc_port}"
            env, token, bodies = prepare(
                tmp / "var", sbc_url, args.members, polling=args.polling == "on"
            )
            httpx.post(f"{sbc_url}/_sandbox/reset_rate_limits", timeout=5)
            log = (tmp / "serve.log").open("wb")
            server = subprocess.Popen(
                [sys.executable, "-m", "ledgerlink.cli", "serve", "--port", str(args.port)],
                env={**env, "LEDGERLINK_LOG_LEVEL": args.log_level},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            base = wait_ready(server, f"http://127.0.0.1:{args.port}")
            db = Database(f"sqlite:///{tmp / 'var' / 'ledgerlink.db'}")
            started = datetime.now(UTC)
            began = time.perf_counter()
            sent, accepted, took = asyncio.run(drive(base, token, bodies, args.rate, args.seconds))
            took.sort()
            sending = time.perf_counter() - began
            drained = wait_drained(db, args.drain)
            elapsed = time.perf_counter() - began
            with db.engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT lag_ms, outcome FROM realtime_writes WHERE direction = 'to_ledger' "
                    "AND changed_at >= ?",
                    (started.replace(tzinfo=None).isoformat(sep=" "),),
                ).all()
                refused_429 = conn.exec_driver_sql(
                    "SELECT COUNT(*) FROM realtime_writes WHERE outcome = 'retrying'"
                ).scalar()
                polled = conn.exec_driver_sql(
                    "SELECT COUNT(*) FROM realtime_writes WHERE direction = 'to_registry'"
                ).scalar()
            db.dispose()
            lags = sorted(int(lag) for lag, outcome in rows if outcome in ("written", "unchanged"))
            outcomes: dict[str, int] = {}
            for _, outcome in rows:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            print(
                json.dumps(
                    {
                        "benchmark": "real-time registry → SBC",
                        "database": "sqlite (embedded default), embedded job runner",
                        "ledger": f"SBC simulator (own process, rate limit {args.sbc_limit}/min "
                        f"per business; ledgerlink's throttle {SBC_LIMIT}/min)",
                        "changes_per_second": args.rate,
                        "members": args.members,
                        "send_seconds": round(sending, 1),
                        "changes_sent": sent,
                        "changes_accepted": accepted,
                        "api_put_p50_s": round(took[len(took) // 2], 3) if took else None,
                        "api_put_p99_s": round(took[int(len(took) * 0.99)], 3) if took else None,
                        "drained": drained,
                        "seconds_until_drained": round(elapsed, 1),
                        "writes": outcomes,
                        "writes_retried_after_429_or_5xx": refused_429,
                        "sbc_to_registry_polling": args.polling,
                        "poll_records_in_feed": polled,
                        "writes_per_second": round(len(lags) / elapsed, 2) if elapsed else None,
                        "changes_per_write": round(accepted / len(lags), 1) if lags else None,
                        "lag_p50_s": round(percentile(lags, 0.5) / 1000, 2) if lags else None,
                        "lag_p99_s": round(percentile(lags, 0.99) / 1000, 2) if lags else None,
                        "lag_max_s": round(lags[-1] / 1000, 2) if lags else None,
                        "peak_rss_kib": {
                            "ledgerlink": peak_rss_kib(server.pid),
                            "sbc_simulator": peak_rss_kib(sbc.pid)
                            if sbc.poll() is None
                            else f"exited ({sbc.returncode})",
                        },
                    }
                )
            )
        finally:
            if args.keep_log and (tmp / "serve.log").exists():
                args.keep_log.write_bytes((tmp / "serve.log").read_bytes())
            if server is not None:
                stop(server)
            stop(sbc)


if __name__ == "__main__":
    os.environ.setdefault("LEDGERLINK_LOG_LEVEL", "warning")
    main()
