"""Workers as separate processes (``python -m ledgerlink.jobs``, ``ledgerlink worker``).

A job whose worker is SIGKILLed mid-run must run again on another worker; a worker asked
to stop with SIGTERM must let its running job finish, and a long job that checks for the
stop hands back uncounted; on both back-ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ledgerlink.jobs.port import JobQueue, job_queue
from ledgerlink.jobs.registry import load_task_modules
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from tests.support.job_tasks import TASK_MODULE, create_effects_table, effects_of
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2.0


@pytest.fixture
def worker_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINK_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "LEDGERLINK_DATABASE_URL": settings.resolved_database_url,
            "LEDGERLINK_VAR_DIR": str(tmp_path / "worker-var"),
            "LEDGERLINK_VAULT_KEYS": Fernet.generate_key().decode(),
            "LEDGERLINK_TASK_MODULES": json.dumps([TASK_MODULE]),
            "LEDGERLINK_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
            "LEDGERLINK_WORKER_HEARTBEAT_SECONDS": "0.4",
            "LEDGERLINK_JOB_POLL_SECONDS": "0.1",
            "LEDGERLINK_WORKER_CONCURRENCY": "2",
            "LEDGERLINK_LOG_FORMAT": "console",
        }
    )
    return env


@pytest.fixture
def queue(settings: Settings, db: Database) -> JobQueue:
    settings.task_modules = [TASK_MODULE]
    load_task_modules(settings)
    create_effects_table(db)
    return job_queue(settings, db)


#: The worker as an operator runs it (the CLI), beside the bare ``python -m ledgerlink.jobs``.
LEDGERLINK_WORKER = [str(Path(sys.executable).parent / "ledgerlink"), "worker"]
BARE_WORKER = [sys.executable, "-m", "ledgerlink.jobs"]


@contextmanager
def worker_process(
    env: dict[str, str], log_path: Path, command: list[str] = BARE_WORKER
) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=log_path.parent,  # away from any ledgerlink.toml in the checkout
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def enqueue_slow(db: Database, queue: JobQueue, label: str, seconds: float) -> int:
    with db.transaction() as session:
        job_id = queue.enqueue(session, "test.slow", {"label": label, "seconds": seconds})
    assert job_id is not None
    return job_id


def test_a_job_whose_worker_is_killed_runs_to_completion_on_another_worker(
    db: Database, queue: JobQueue, worker_env: dict[str, str], tmp_path: Path
) -> None:
    job_id = enqueue_slow(db, queue, "killed", seconds=1.5)

    # Two workers (started together: start-up is most of this test's time); the one
    # that took the job is killed, the other must notice and run the job again.
    with (
        worker_process(worker_env, tmp_path / "a.log") as a,
        worker_process(worker_env, tmp_path / "b.log") as b,
    ):
        started = wait_until(
            lambda: effects_of(db, "killed", "started"), timeout=30, what="the job to start"
        )
        victim, survivor = (a, b) if started[0].pid == a.pid else (b, a)
        assert started[0].pid == victim.pid
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        finished = wait_until(
            lambda: effects_of(db, "killed", "finished"),
            timeout=30,
            what=f"the job to finish on the other worker; logs in {tmp_path}",
        )
        info = wait_until(
            lambda: (i := queue.get(job_id)) and i.status == "succeeded" and i,
            timeout=10,
            what="the job to be marked succeeded",
        )

    starts = effects_of(db, "killed", "started")
    assert [(e.attempt, e.pid) for e in starts] == [(1, victim.pid), (2, survivor.pid)]
    assert [(e.attempt, e.pid) for e in finished] == [(2, survivor.pid)]
    assert info.attempts == 2


def test_sigterm_lets_the_running_job_finish_before_the_worker_exits(
    db: Database, queue: JobQueue, worker_env: dict[str, str], tmp_path: Path
) -> None:
    job_id = enqueue_slow(db, queue, "graceful", seconds=1.5)

    with worker_process(worker_env, tmp_path / "worker.log") as worker:
        wait_until(
            lambda: effects_of(db, "graceful", "started"), timeout=30, what="the job to start"
        )
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(20)

    log = (tmp_path / "worker.log").read_text()
    assert code == 0, log
    assert len(effects_of(db, "graceful", "finished")) == 1, log
    info = queue.get(job_id)
    assert info is not None
    assert info.status == "succeeded"


def test_sigterm_during_a_long_job_hands_it_back_uncounted_and_the_next_worker_finishes_it(
    db: Database, queue: JobQueue, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """``ledgerlink worker`` asked to stop in the middle of a long job (bulk link, sync,
    drain) does not sit out its 30 s grace: the job stops at its checkpoint, goes back
    to the queue with no attempt counted, and the other worker finishes it, once."""
    with db.transaction() as session:
        job_id = queue.enqueue(session, "test.until_stopped", {"label": "handback"})
    assert job_id is not None

    # Two workers started together (start-up is most of this test's time): the one that
    # took the job is asked to stop, the other must finish it.
    with (
        worker_process(worker_env, tmp_path / "a.log", LEDGERLINK_WORKER) as a,
        worker_process(worker_env, tmp_path / "b.log", LEDGERLINK_WORKER) as b,
    ):
        started = wait_until(
            lambda: effects_of(db, "handback", "started"), timeout=30, what="the job to start"
        )
        stopped, other = (a, b) if started[0].pid == a.pid else (b, a)
        stopped.send_signal(signal.SIGTERM)
        code = stopped.wait(15)  # well inside the 30 s grace a job ignoring the stop gets
        done = wait_until(
            lambda: (i := queue.get(job_id)) and i.status == "succeeded" and i,
            timeout=30,
            what=f"the other worker to finish the job; logs in {tmp_path}",
        )

    log = (tmp_path / ("a.log" if stopped is a else "b.log")).read_text()
    assert code == 0, log
    assert [(e.event, e.pid) for e in effects_of(db, "handback")] == [
        ("started", stopped.pid),
        ("interrupted", stopped.pid),
        ("finished", other.pid),
    ]
    finished = effects_of(db, "handback", "finished")
    # Attempt 1 again: the handed-back run did not count (a counted one would make it 2).
    assert [(e.job_id, e.attempt) for e in finished] == [(job_id, 1)]
    assert done.attempts == 1
