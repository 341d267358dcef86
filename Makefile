# The two commands: `make demo` runs the product, `make test` runs the whole suite.
# Both work from a fresh clone with nothing but Python 3.11, git and make installed.
# `make check` is the inner loop: lint, types and the fast lane of the suite.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
UV     := $(VENV)/bin/uv
UV_VERSION := 0.13.9
export UV_PYTHON := $(VENV)/bin/python

.PHONY: demo test check lint typecheck bytecode system-test-deps clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(UV): $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Runtime dependencies only: what `make demo` needs.
# --compile-bytecode: every process (each test's `ledgerlink` subprocess too) then loads
# the dependencies' bytecode instead of compiling them again; see `bytecode` below.
$(VENV)/.runtime: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --inexact --quiet --compile-bytecode
	@touch $@

# Everything the suite needs on top.
$(VENV)/.test: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --inexact --quiet --extra test --compile-bytecode
	@touch $@ $(VENV)/.runtime

DEMO_PORT ?= 8000

demo: $(VENV)/.runtime
	$(VENV)/bin/ledgerlink demo --port $(DEMO_PORT)

# PostgreSQL (the scale-out back-end), Chromium (browser tests) and npm (axe-core for
# the browser tests) from Debian.
system-test-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check ledgerlink

typecheck: $(VENV)/.test
	$(VENV)/bin/mypy ledgerlink

# pytest exits 5 when it collects nothing; make treats any non-zero exit as failure, so
# a marker or path that selects no tests fails both targets below (never `|| true` them).
# Two workers (CI has two cores), handed one test at a time in the order
# tests/support/scheduling.py sets (the files that took longest last time first), so both
# finish together instead of one waiting for the other's slow file.
PYTEST_DIST := -n 2 --dist load --maxschedchunk 1

# Bytecode for ledgerlink and the test helpers, written ahead: Python writes none where
# PYTHONDONTWRITEBYTECODE is set (our shared development machine sets it), and then every
# `ledgerlink` process the suite starts compiled every module again (3.6 s of CPU to start
# the CLI; 1.3 s with bytecode). Stale files are harmless: Python checks each against
# its source and compiles a changed module in memory.
bytecode: $(VENV)/.test
	$(VENV)/bin/python -m compileall -q -j 0 ledgerlink tests

# axe-core for the browser tests' accessibility checks, pinned in package-lock.json.
node_modules/axe-core/axe.min.js:
	npm ci --no-audit --no-fund

# The type check (20 s of one core on a fresh clone) runs beside the suite instead of
# before it: the two test workers leave a core idle about a quarter of the time (they wait
# on servers, browsers and PostgreSQL), and mypy fills that. Both must pass; the exit
# status is the suite's when it failed (5 when it collected nothing), else mypy's.
test: system-test-deps $(VENV)/.test lint bytecode node_modules/axe-core/axe.min.js
	@$(VENV)/bin/mypy ledgerlink > $(VENV)/mypy.log 2>&1 & types_pid=$$!; \
	$(VENV)/bin/pytest $(PYTEST_DIST) --durations=15; tests=$$?; \
	wait $$types_pid; types=$$?; \
	echo "mypy ledgerlink:"; cat $(VENV)/mypy.log; \
	if [ $$tests -ne 0 ]; then exit $$tests; fi; exit $$types

# The fast lane, for the inner loop (under 3 minutes on two cores): SQLite only (no
# PostgreSQL server is started), without the tests marked `slow` (browser tests, the
# SIGKILL and 2,000-record runs). `make test` still runs everything on both back-ends.
check: $(VENV)/.test lint typecheck bytecode
	LEDGERLINK_TEST_BACKENDS=sqlite $(VENV)/bin/pytest -m "not slow" $(PYTEST_DIST) -q \
	  --durations=10

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
