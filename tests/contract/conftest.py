"""The contract suite runs once per ledger kind: every kind the connector registry lists,
and Test Books, a kind that exists only in the tests (registered for each test with
``registry.registered``, no production file naming it). The ledgerlink database is SQLite:
what is under test is the adapter and its sandbox, not ledgerlink's store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ledgerlink.connectors import registry
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings
from tests.contract.harnesses import HARNESSES, Built
from tests.support.databases import SqliteFactory
from tests.support.testbooks import TESTBOOKS

#: The kinds the contract runs for: the installed ledger kinds, then the test-only one.
KINDS = (*registry.ledger_kinds(), TESTBOOKS.kind)


@pytest.fixture
def runtime(sqlite_factory: SqliteFactory, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=sqlite_factory.create(tmp_path / "db"),
        vault_keys=Fernet.generate_key().decode(),
        log_format="console",
        _env_file=None,  # type: ignore[call-arg]
    )
    runtime = Runtime(settings)
    yield runtime
    runtime.close()


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest, runtime: Runtime, tmp_path: Path) -> Iterator[Built]:
    kind = str(request.param)
    with ExitStack() as stack:
        if kind == TESTBOOKS.kind:
            stack.enter_context(registry.registered(TESTBOOKS))
        assert kind in registry.ledger_kinds()
        start = HARNESSES.get(kind)
        assert start is not None, (
            f"ledger kind {kind!r} has no contract harness: add one to "
            "tests/contract/harnesses.py so its adapter runs the ledger contract"
        )
        yield stack.enter_context(start(runtime, tmp_path))
