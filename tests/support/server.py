"""Run ledgerlink as users do: the real CLI in a subprocess, on a loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from ledgerlink.connectors.http import tls_context
from ledgerlink.settings import Settings
from tests.support.postgres import _free_port
from tests.support.waiting import wait_until


def cli_env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINK_")}
    env.update(settings_env)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def server_env(settings: Settings) -> dict[str, str]:
    """The environment a CLI subprocess needs to use the test's database and vault."""
    keys = settings.vault_keys.get_secret_value() if settings.vault_keys else ""
    return cli_env(
        {
            "LEDGERLINK_DATABASE_URL": settings.resolved_database_url,
            "LEDGERLINK_VAR_DIR": str(settings.var_dir),
            "LEDGERLINK_VAULT_KEYS": keys,
            "LEDGERLINK_LOG_FORMAT": "json",
        }
    )


def run_cli(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ledgerlink.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"ledgerlink {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


@contextmanager
def running_server(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Start ``ledgerlink serve`` and yield its base URL once /readyz says ready."""
    port = _free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
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
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, process, log_path)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_ready(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    # One client for every poll: each new client would build its TLS context again
    # (25 ms of CPU), ten times a second while the server starts.
    with httpx.Client(timeout=2, verify=tls_context()) as http:

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
            try:
                return http.get(f"{base}/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, timeout=60, interval=0.1, what=f"{base}/readyz to answer 200")
        except AssertionError as exc:
            raise RuntimeError(f"{exc}:\n{log_path.read_text()}") from None


@contextmanager
def running_worker(env: dict[str, str], log_path: Path) -> Iterator[None]:
    """``ledgerlink worker`` (the procrastinate worker on PostgreSQL) while the block runs."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ledgerlink.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
