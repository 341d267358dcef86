"""The ``ledgerlink`` command line in the test's own process (typer's ``CliRunner``).

A ``ledgerlink`` subprocess spends about 3 s of CPU importing before it does anything; a
walk-through of a dozen commands spent most of its minute starting Pythons. Where a test
asserts what a command does and says (output, exit code, what it stores), it runs the same
Typer app here, with the environment a subprocess would get (``server.server_env``): the
same settings, the same output on stdout and errors on stderr, the same exit codes.
``tests/support/server.run_cli`` stays for what only a real process shows (the installed
entry point, signals): keep at least one real subprocess per command group.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from typer.testing import CliRunner


@contextmanager
def _logging_restored() -> Iterator[None]:
    """A command sets up logging for its process (on the runner's captured stderr, which
    is closed afterwards); put this process's set-up back when it ends, as the end of a
    real command's process would."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)


def _invoke(args: list[str], env: dict[str, str], stdin: str | None) -> tuple[int, str, str]:
    from ledgerlink.cli import app  # the whole CLI: imported once, by the first call

    # The environment the subprocess would have had: ours without other LEDGERLINK_* values.
    unset: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("LEDGERLINK_") and name not in env
    }
    with _logging_restored():
        result = CliRunner().invoke(
            app, args, input=stdin, env={**env, **unset}, catch_exceptions=False
        )
    return result.exit_code, result.stdout, result.stderr


def cli(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    """Run ``ledgerlink <args>`` in this process; its standard output (it must succeed)."""
    code, stdout, stderr = _invoke(args, env, stdin)
    assert code == 0, f"ledgerlink {' '.join(args)} exited {code}:\n{stderr}"
    return stdout


def cli_fails(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    """Run ``ledgerlink <args>`` in this process, which must fail; its standard error with
    the whitespace folded (so a wrapped line reads as one)."""
    code, stdout, stderr = _invoke(args, env, stdin)
    assert code != 0, f"ledgerlink {' '.join(args)} succeeded:\n{stdout}"
    return " ".join(stderr.split())
