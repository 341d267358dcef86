"""Longest first, so the two workers finish together.

``make test`` hands tests to two xdist workers one at a time (``--dist load
--maxschedchunk 1``): a worker that finishes a test takes the next one in collection
order. Ordered as written, a two-minute SIGKILL test that comes late keeps one worker busy
while the other has long finished; with ``--dist loadfile`` a whole slow file did. This
plugin orders files by how long their tests took last time, longest first (a file's
tests stay together and in their order, so module- and package-scoped fixtures such as
the e2e tests' browser start once per worker), which leaves the short tests to fill the
end evenly.

Durations come from pytest's cache (``.pytest_cache``, key ``ledgerlink/test_seconds``),
written at the end of every run with the setup + call + teardown time of each test that
ran. A test not in the cache counts ``SLOW_GUESS`` seconds when it is marked ``slow`` and
``GUESS`` otherwise, so a fresh clone starts its slow files first too. Under xdist the
controller reads the cache once and hands the same durations to every worker, which must
collect the same order (another run writing the cache meanwhile cannot split them).
Ordering changes no test's outcome: tests never depend on each other's order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest

CACHE_KEY = "ledgerlink/test_seconds"
_WORKER_INPUT = "ledgerlink_test_seconds"
_READ = pytest.StashKey[dict[str, float]]()

#: Seconds assumed for a test the cache does not know.
GUESS = 0.5
SLOW_GUESS = 20.0


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _known_seconds(config: pytest.Config) -> dict[str, float]:
    """What the last runs measured: from the controller on a worker, from the cache in the
    controller (read once)."""
    if _is_worker(config):
        return dict(json.loads(config.workerinput.get(_WORKER_INPUT, "{}")))  # type: ignore[attr-defined]
    if _READ not in config.stash:
        cache = getattr(config, "cache", None)
        found = cache.get(CACHE_KEY, {}) if cache is not None else {}
        config.stash[_READ] = {str(k): float(v) for k, v in dict(found).items()}
    return config.stash[_READ]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, in the controller: every worker orders by the same durations."""
    node.workerinput[_WORKER_INPUT] = json.dumps(_known_seconds(node.config))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker only: in one process the order changes nothing but what a
    developer sees first, and ``--ff``/``--nf`` ask for an order of their own."""
    if not _is_worker(config) or config.getoption("failedfirst", False):
        return
    if config.getoption("newfirst", False):
        return
    seconds = _known_seconds(config)
    per_file: dict[str, float] = defaultdict(float)
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        file = item.nodeid.split("::", 1)[0]
        guess = SLOW_GUESS if item.get_closest_marker("slow") else GUESS
        per_file[file] += seconds.get(item.nodeid, guess)
        first.setdefault(file, index)

    def longest_file_first(item: pytest.Item) -> tuple[float, int]:
        file = item.nodeid.split("::", 1)[0]
        return (-per_file[file], first[file])

    items.sort(key=longest_file_first)  # stable: a file's tests keep their order


class _Recorder:
    """Adds up each test's phases (in the controller, from the workers' reports) and
    merges them into the cache when the run ends."""

    def __init__(self, cache: pytest.Cache) -> None:
        self.cache = cache
        self.ran: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.ran[report.nodeid] += float(report.duration)

    def pytest_sessionfinish(self) -> None:
        if not self.ran:
            return
        merged = {str(k): float(v) for k, v in dict(self.cache.get(CACHE_KEY, {})).items()}
        merged.update({k: round(v, 3) for k, v in self.ran.items()})
        self.cache.set(CACHE_KEY, merged)


def pytest_configure(config: pytest.Config) -> None:
    cache = getattr(config, "cache", None)
    if not _is_worker(config) and cache is not None:
        config.pluginmanager.register(_Recorder(cache), "ledgerlink-test-seconds")
