"""Every response an SBC simulator sends during the suite is checked against Sage's
published v3.1 schema, and a mismatch fails the test that caused it.

The check lives in the simulator (``ledgerlink/sandbox/sbc/conformance.py``) and is turned
on by an environment variable, so it is on wherever a test starts the simulator: in a
thread of the test process or as ``ledgerlink sandbox serve sbc`` in a child process (which
inherits the environment). Each pytest process (an xdist worker too) gets its own report
file; the simulator appends each mismatch to it, and after every test phase the lines added
since the last look fail that test with the path, the operation and the schema error.

Registered as a plugin in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest

from ledgerlink.sandbox.sbc import conformance

_report: Path | None = None
_seen = 0


def pytest_configure(config: pytest.Config) -> None:
    global _report
    folder = Path(tempfile.mkdtemp(prefix="ledgerlink-sbc-schema-"))
    _report = folder / "mismatches.jsonl"
    os.environ[conformance.CHECK_ENV] = "1"
    os.environ[conformance.REPORT_ENV] = str(_report)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _report is not None:
        shutil.rmtree(_report.parent, ignore_errors=True)


def new_mismatches() -> list[conformance.Mismatch]:
    """Mismatches reported (by any process) since the last call."""
    global _seen
    conformance.drain()  # what this process saw is in the report file as well
    if _report is None:
        return []
    found = list(conformance.read_report(_report))
    fresh = found[_seen:]
    _seen = len(found)
    return fresh


def _fail_on_mismatches(phase: str) -> None:
    fresh = new_mismatches()
    if fresh:
        lines = "\n".join(f"  - {m.describe()}" for m in fresh[:10])
        more = f"\n  … and {len(fresh) - 10} more" if len(fresh) > 10 else ""
        pytest.fail(
            f"{len(fresh)} SBC sandbox response(s) during {phase} do not follow the published "
            f"schema (ledgerlink/sandbox/sbc/vendor/):\n{lines}{more}",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    yield
    _fail_on_mismatches("set-up")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    yield
    _fail_on_mismatches("the test")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield
    _fail_on_mismatches("tear-down")
