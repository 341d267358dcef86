"""A throw-away PostgreSQL server for the test session.

Started from Debian's versioned bin directory as the ``postgres`` user when we are root
(the server refuses to run as root), on a private socket directory and a free loopback
port, with durability switched off because the data dies with the session anyway. Its data
directory is in memory (``/dev/shm``) where the machine has one: every test clones the
template database, and ``CREATE DATABASE … STRATEGY FILE_COPY`` copies its files and
checkpoints: 450 to 640 ms a clone on this machine's disk against 30 to 40 ms in memory
(measured), though fsync is off.
Set ``LEDGERLINK_TEST_POSTGRES_URL`` to use an existing server instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.waiting import wait_until


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise RuntimeError(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin. "
        "Run `make test` (it installs Debian's postgresql package) or set "
        "LEDGERLINK_TEST_POSTGRES_URL to a server you started yourself."
    )


#: A RAM-backed directory for the server's data (see the module doc), when there is one.
MEMORY_DIR = Path("/dev/shm")


def memory_dir() -> str | None:
    """``/dev/shm`` when it is a writable directory with room for the session's
    databases and test directories (a few hundred MB at most, since each test's clone is
    dropped and a passing test's directory removed), else None: the usual temporary
    directory."""
    try:
        room = os.statvfs(MEMORY_DIR)
    except OSError:
        return None
    free = room.f_bavail * room.f_frsize
    return str(MEMORY_DIR) if os.access(MEMORY_DIR, os.W_OK) and free > 2 * 1024**3 else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a superuser URL (``postgresql+psycopg://…/postgres``) for a fresh server."""
    existing = os.environ.get("LEDGERLINK_TEST_POSTGRES_URL")
    if existing:
        yield existing
        return

    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="ledgerlink-pg-", dir=memory_dir()))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        "-c max_connections=300 -c shared_buffers=128MB"
    )
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        _wait_for(port)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _wait_for(port: int, timeout: float = 30.0) -> None:
    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    wait_until(listening, timeout=timeout, interval=0.1, what=f"PostgreSQL on port {port}")
