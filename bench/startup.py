"""Time from `make demo` to a ready portal, and the idle memory of the running server.

Clones the current commit into a temporary directory (so nothing of this checkout's
virtualenv or data is reused), runs `make demo` there, polls /readyz, then waits and
reads the server's resident memory. Run twice, with and without an existing virtualenv:

    .venv/bin/python bench/startup.py            # fresh clone, no virtualenv
    .venv/bin/python bench/startup.py --reuse    # second start in the same clone

Prints one JSON object per run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def find_server(clone: Path) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "ledgerlink demo" in cmdline and str(clone) in cmdline:
            return int(entry.name)
    raise RuntimeError("demo server process not found")


def start_demo(clone: Path, port: int) -> tuple[float, subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINK_")}
    started = time.monotonic()
    process = subprocess.Popen(
        ["make", "demo", f"DEMO_PORT={port}"],
        cwd=clone,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while True:
        if process.poll() is not None:
            raise RuntimeError("make demo exited before the portal was ready")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return time.monotonic() - started, process
        except httpx.HTTPError:
            pass
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="also time a second start with the virtualenv already built",
    )
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ledgerlink-bench-"))
    clone = workdir / "ledgerlink"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    try:
        runs = [("fresh clone, no virtualenv", False)]
        if args.reuse:
            runs.append(("existing virtualenv", True))
        for label, _ in runs:
            port = free_port()
            seconds, process = start_demo(clone, port)
            time.sleep(args.idle_seconds)
            pid = find_server(clone)
            print(
                json.dumps(
                    {
                        "benchmark": "make demo → ready portal",
                        "run": label,
                        "seconds_to_ready": round(seconds, 2),
                        "idle_rss_mib": round(rss_kib(pid) / 1024, 1),
                        "idle_after_seconds": args.idle_seconds,
                    }
                )
            )
            stop(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
