"""`ledgerlink sandbox up` stops the simulators it started when it is stopped, by Ctrl-C or
by SIGTERM (`kill`, a service manager): none is left running, holding its port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.waiting import wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/_sandbox/faults", timeout=0.5)
    except httpx.HTTPError:
        return False
    return True


@pytest.mark.slow  # a real `ledgerlink sandbox up` with three simulator processes
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_stopping_sandbox_up_stops_every_simulator(tmp_path: Path, stop: signal.Signals) -> None:
    ports = {name: _free_port() for name in ("SBC", "PAYTRACE", "SAGE500")}
    env = {
        **os.environ,
        "LEDGERLINK_VAR_DIR": str(tmp_path / "var"),
        **{f"LEDGERLINK_SANDBOX_{name}_PORT": str(port) for name, port in ports.items()},
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "ledgerlink.cli", "sandbox", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert up.stdout is not None
        for line in up.stdout:
            if "Simulators are up" in line:
                break
        else:
            pytest.fail(f"sandbox up ended before the simulators were ready: {up.wait()}")
        assert all(_answers(port) for port in ports.values())
        up.send_signal(stop)
        assert up.wait(timeout=30) in (0, 130)
        wait_until(
            lambda: not [name for name, port in ports.items() if _answers(port)],
            timeout=5,
            interval=0.1,
            what="every simulator to stop listening",
        )
    finally:
        if up.poll() is None:
            up.kill()
