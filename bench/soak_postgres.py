"""The soak's own PostgreSQL server: a private data directory, a fixed port, restartable.

Started from Debian's versioned bin directory as the ``postgres`` user when we are root
(the server refuses to run as root), as ``tests/support/postgres.py`` does, with
durability switched off (the data dies with the run). Unlike the test server it is
restarted mid-run (``pg_ctl restart -m fast``): that is one of the soak's faults.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


def bin_dir() -> Path:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise RuntimeError(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install "
        "Debian's postgresql package (make test does)"
    )


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def _memory_dir() -> str | None:
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class PrivateServer:
    """One PostgreSQL server for the whole soak; a database per worker count."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bin = bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="ledgerlink-soak-pg-", dir=_memory_dir()))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "server.log"
        self.restarts: list[float] = []

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), *args]
        return subprocess.run(_as_postgres(command), check=check, capture_output=True)

    def start(self) -> None:
        deadline = time.monotonic() + 30  # a server stopped a moment ago may still hold it
        while not _port_free(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"port {self.port} is taken: stop what listens there or pass --pg-port"
                )
            time.sleep(0.5)
        self.sockets.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres"]
        initdb += ["-A", "trust", "-E", "UTF8", "--no-sync"]
        subprocess.run(_as_postgres(initdb), check=True, capture_output=True)
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.sockets} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=400 -c shared_buffers=256MB"
        )
        self._pg_ctl("-o", options, "-l", str(self.log), "-w", "-t", "60", "start")
        self.wait_ready()

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.admin_url(name)

    def restart(self) -> float:
        """``pg_ctl restart -m fast``: every connection is cut; returns the seconds it took."""
        began = time.monotonic()
        # -l: the new postmaster must not inherit our pipes (pg_ctl would never return)
        self._pg_ctl("restart", "-m", "fast", "-l", str(self.log), "-w", "-t", "60")
        self.wait_ready()
        self.restarts.append(time.monotonic() - began)
        return self.restarts[-1]

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(
                    f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                    connect_timeout=2,
                ):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL on port {self.port} did not come up; see {self.log}")

    def pids(self) -> list[int]:
        """The postmaster and every backend (for peak RSS)."""
        pid_file = self.data / "postmaster.pid"
        try:
            master = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        children = Path(f"/proc/{master}/task/{master}/children")
        try:
            return [master, *(int(p) for p in children.read_text().split())]
        except OSError:
            return [master]

    def stop(self) -> None:
        self._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
