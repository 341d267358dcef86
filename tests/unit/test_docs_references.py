"""Every document the CLI's help or the code points a reader to exists (issue 19, defect 11:
`ledgerlink sandbox --help` said "See docs/sandboxes.md", which was not there)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main

from ledgerlink.cli import DeferredGroup, app

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = re.compile(r"\bdocs/[\w./-]*\w")


def _help_texts(command: Any, name: str) -> Iterator[tuple[str, str]]:
    """(command path, text) for every help text of ``command`` and everything under it."""
    if isinstance(command, DeferredGroup):
        command = command.load()
    for text in (command.help, command.short_help, command.epilog):
        if text:
            yield name, text
    for param in command.params:
        if getattr(param, "help", None):
            yield f"{name} {param.name}", str(param.help)
    # typer builds on a click of its own: a group is told by its sub-commands, not its class
    for sub_name, sub in getattr(command, "commands", {}).items():
        yield from _help_texts(sub, f"{name} {sub_name}")


def test_every_docs_path_the_cli_help_names_exists() -> None:
    named = {
        (where, path)
        for where, text in _help_texts(typer.main.get_command(app), "ledgerlink")
        for path in DOC_PATH.findall(text)
    }
    assert named, "the help names no document at all: the walk missed the help texts"
    missing = sorted(f"{where}: {path}" for where, path in named if not (ROOT / path).is_file())
    assert missing == []


def test_every_docs_path_the_code_names_exists() -> None:
    missing = sorted(
        f"{source.relative_to(ROOT)}: {path}"
        for source in (ROOT / "ledgerlink").rglob("*.py")
        for path in DOC_PATH.findall(source.read_text(encoding="utf-8"))
        if not (ROOT / path).is_file()
    )
    assert missing == []
