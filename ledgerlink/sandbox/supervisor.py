"""Run the three simulators as child processes: `ledgerlink sandbox up` and `make demo`.

Each simulator gets its own process (and so its own core and event loop); the supervisor
waits until each answers, reports where, and stops them all together.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ledgerlink.settings import Settings

SIMULATORS = ("sbc", "paytrace", "sage500")


def stop_children_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a service manager) unwind this process like Ctrl-C, so the
    simulators it started are stopped with it. Without it the default action kills the
    process at once (uvicorn re-raises the signal after its own shutdown) and the
    simulators are left running, holding their ports."""

    def unwind(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, unwind)
    # A process started in the background by a script inherits SIGINT *ignored* (POSIX),
    # and Python then leaves it so: Ctrl-C (or `kill -INT`) would do nothing. Take it back.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def installed_simulators() -> tuple[str, ...]:
    """Simulators present in this installation (a trimmed build may leave some out)."""
    return tuple(n for n in SIMULATORS if importlib.util.find_spec(f"ledgerlink.sandbox.{n}"))


@dataclass(frozen=True)
class SimulatorAddress:
    name: str
    base_url: str  # the API (SBC, PayTrace) or the admin endpoint (Sage 500)


def addresses(settings: Settings) -> dict[str, SimulatorAddress]:
    host = settings.sandbox_host
    ports = {
        "sbc": settings.sandbox_sbc_port,
        "paytrace": settings.sandbox_paytrace_port,
        "sage500": settings.sandbox_sage500_port,
    }
    return {name: SimulatorAddress(name, f"http://{host}:{port}") for name, port in ports.items()}


@dataclass
class Supervisor:
    settings: Settings
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(
        self, names: tuple[str, ...] = SIMULATORS, *, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            log = (self.log_dir / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(  # noqa: S603 - our own CLI, fixed args
                [sys.executable, "-m", "ledgerlink.cli", "sandbox", "serve", name, *extra_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait_ready(self, timeout: float = 60.0) -> dict[str, SimulatorAddress]:
        """Block until every started simulator answers its fault admin endpoint."""
        where = addresses(self.settings)
        deadline = time.monotonic() + timeout
        pending = set(self.processes)
        while pending:
            for name in sorted(pending):
                process = self.processes[name]
                if process.poll() is not None:
                    log = self.log_dir / f"{name}.log"
                    raise RuntimeError(
                        f"the {name} simulator exited with code {process.returncode}; "
                        f"see {log} (a port already in use is the usual cause)"
                    )
                try:
                    httpx.get(f"{where[name].base_url}/_sandbox/faults", timeout=1.0)
                except httpx.HTTPError:
                    continue
                pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"simulators not ready after {timeout:.0f} s: {sorted(pending)}")
            if pending:
                time.sleep(0.2)
        return {name: where[name] for name in self.processes}

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM every simulator, then kill what is still running after one shared
        grace period (not one per simulator: three slow ones must not take 30 s)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace_seconds
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def wait(self) -> None:
        """Until one simulator exits (or Ctrl-C); then stop the others."""
        try:
            while all(p.poll() is None for p in self.processes.values()):
                time.sleep(0.5)
        finally:
            self.stop()
