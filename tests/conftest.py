"""Shared fixtures. Any test that asks for ``db_url`` (or something built on it) runs
twice: once on SQLite and once on PostgreSQL, each time on a fresh migrated database.

``LEDGERLINK_TEST_BACKENDS=sqlite`` (a comma-separated list of ``sqlite`` and
``postgresql``) runs only those back-ends: ``make check`` uses it for a fast lane that
starts no PostgreSQL server."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import settings as hypothesis_profiles

from ledgerlink.identity import passwords
from ledgerlink.logs import configure_logging, unconfigure_logging
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from tests.support.databases import BACKENDS, PostgresFactory, SqliteFactory, chosen_backends
from tests.support.postgres import memory_dir, postgres_server

_E2E = Path(__file__).parent / "e2e"

# xdist starts its workers with COLUMNS=80 and LINES in their environment (a plain pytest
# process has neither). The CLI's rich consoles are made when ``ledgerlink.terminal`` is
# first imported and would keep 80 columns for good, so a command run in-process
# (tests/support/cli.py) with COLUMNS=400 wrapped its table where a real process does not.
# Without them a console measures the width when it prints, from the environment then.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)

# Each test's tmp_path (its SQLite database, vault key, simulator state) in memory where the
# machine has room, as PostgreSQL's data already is: on this machine's disk a test waited
# 30 to 70 ms for the fsyncs of SQLite checkpoints, the vault's and the audit anchors'
# files (strace -w: 0.64 s for the 9 tests of test_payments_posting.py, 0.008 s in
# /dev/shm). A passing test's directory is removed as it ends (tmp_path_retention_policy
# in pyproject.toml), so a run holds little memory; a failed test's is kept to look at.
# Set here, before the first tmp_path, in the controller, which hands xdist's workers
# directories below its own. An explicit --basetemp or PYTEST_DEBUG_TEMPROOT wins.
if "PYTEST_DEBUG_TEMPROOT" not in os.environ and (_memory := memory_dir()) is not None:
    os.environ["PYTEST_DEBUG_TEMPROOT"] = _memory

#: Longest files first, from the durations of earlier runs (see its docstring); every SBC
#: sandbox response checked against the published schema (tests/support/sbc_schema.py).
pytest_plugins = ["tests.support.scheduling", "tests.support.sbc_schema"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests are slow as a whole (Chromium, a real server each): ``make check``
    leaves them out with ``-m "not slow"``; ``make test`` runs them."""
    for item in items:
        if item.path.is_relative_to(_E2E):
            item.add_marker(pytest.mark.slow)


# Property tests judge behaviour, not speed: on a loaded 2-core CI machine an example can
# take longer than hypothesis's default 200 ms deadline without anything being wrong.
hypothesis_profiles.register_profile("ledgerlink", deadline=None)
hypothesis_profiles.load_profile("ledgerlink")

# Every user a test creates and every sign-in would otherwise cost a full argon2 hash
# (~0.2 s of CPU, hundreds of times): this process hashes at argon2's minimum cost.
# Processes the tests start (`ledgerlink serve`, the CLI) still hash at full cost.
passwords.use_cheapest_hashing_for_tests()


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_factory(tmp_path_factory: pytest.TempPathFactory) -> SqliteFactory:
    return SqliteFactory(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_factory(postgres_admin_url: str) -> Iterator[PostgresFactory]:
    factory = PostgresFactory(postgres_admin_url)
    yield factory
    factory.close()


_BACKENDS = chosen_backends(os.environ.get("LEDGERLINK_TEST_BACKENDS"))


@pytest.fixture(params=[pytest.param(name, marks=BACKENDS[name]) for name in _BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield request.getfixturevalue("sqlite_factory").create(tmp_path / "db")
        return
    factory: PostgresFactory = request.getfixturevalue("postgres_factory")
    url = factory.create(tmp_path)
    yield url
    factory.drop(url)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        vault_keys=Fernet.generate_key().decode(),
        job_poll_seconds=0.05,
        log_format="console",
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.resolved_database_url)
    yield database
    database.dispose()


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    from ledgerlink.web.app import create_app

    settings.run_embedded_worker = False
    return create_app(settings)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """ledgerlink's log for this test, as JSON lines (as ``serve`` writes them). Logging is
    process-wide: a test that set it up and left it pointing at its own captured stream
    silenced the next tests' logs, so the set-up is taken down again afterwards."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    yield stream
    unconfigure_logging()
