"""`make demo` talks to a person (issue 19, defect 15): its console shows readable lines —
what it set up, where to sign in, warnings to act on — not a JSON log line every few
seconds; the full JSON log goes to a file under the var directory, and it says where.
`ledgerlink serve` keeps logging JSON."""

from __future__ import annotations

import io
import json
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog

from ledgerlink.logs import configure_console_logging, unconfigure_logging
from tests.support.server import cli_env
from tests.support.waiting import wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _json_lines(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        try:
            json.loads(line)
        except ValueError:
            continue
        found.append(line)
    return found


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    unconfigure_logging()


@pytest.mark.usefixtures("restore_logging")
def test_the_console_gets_readable_warnings_and_the_file_gets_everything(tmp_path: Path) -> None:
    console, log_file = io.StringIO(), tmp_path / "logs" / "demo.log"
    configure_console_logging(log_file, "info", stream=console)
    log = structlog.get_logger("ledgerlink.payments.poller")
    log.info("payments.polled", connection_id=2, read=5, new=5)
    logging.getLogger("stamina").warning("stamina.retry_scheduled")  # per-request chatter
    structlog.get_logger("ledgerlink.vault").warning(
        "vault.key_file_created", hint="back this file up", password="hunter2"
    )

    [shown] = console.getvalue().splitlines()
    assert _json_lines(shown) == []
    assert shown.endswith(
        "WARNING vault.key_file_created: hint=back this file up password=[REDACTED]"
    )
    written = [json.loads(line)["event"] for line in log_file.read_text().splitlines()]
    assert written == ["payments.polled", "stamina.retry_scheduled", "vault.key_file_created"]


@pytest.mark.slow  # a real `ledgerlink demo` process: migrations, 240 members, the portal (12 s)
def test_make_demo_prints_no_json_and_says_where_the_log_is(tmp_path: Path) -> None:
    port, var = _free_port(), tmp_path / "var"
    demo = subprocess.Popen(
        [sys.executable, "-m", "ledgerlink.cli", "demo", "--no-sandboxes", "--port", str(port)],
        env=cli_env({"LEDGERLINK_VAR_DIR": str(var)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log_file = var / "logs" / "demo.log"

    def serving() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).is_success
        except httpx.HTTPError:
            return demo.poll() is not None  # ended early: the output below says why

    try:
        wait_until(serving, timeout=60, what="the demo portal answering")
    finally:
        demo.send_signal(signal.SIGINT)
        stdout, stderr = demo.communicate(timeout=30)
    assert "ledgerlink demo" in stdout, stderr
    assert _json_lines(stdout + stderr) == []
    assert str(log_file.resolve()) in stdout.replace("\n", "")
    events = {json.loads(line)["event"] for line in log_file.read_text().splitlines()}
    assert {"Running upgrade  -> 0001, platform tables", "web.started"} <= events
