"""``ledgerlink backup`` and ``ledgerlink restore``: the database to one file and back,
on SQLite (online backup API) and PostgreSQL (pg_dump / pg_restore). What they do and do
not cover (the vault key) is in ``store/backup.py`` and docs/operations.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ledgerlink.identity.principal import cli_principal
from ledgerlink.logs import configure_logging
from ledgerlink.store.backup import BackupError
from ledgerlink.store.backup import backup as take_backup
from ledgerlink.store.backup import restore as put_back
from ledgerlink.terminal import failure, out
from ledgerlink.terminal import settings as _settings


def backup(
    file: Annotated[Path, typer.Argument(help="The backup file to write (must not exist yet).")],
) -> None:
    """Write a consistent backup of the database to FILE while ledgerlink keeps running
    (SQLite: online backup API; PostgreSQL: pg_dump). The vault key is not included:
    keep a copy of it elsewhere."""
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        report = take_backup(settings, file)
    except BackupError as exc:
        raise failure(f"Backup failed: {exc}") from None
    out.print(str(report), soft_wrap=True)


def restore(
    file: Annotated[Path, typer.Argument(help="A backup written by `ledgerlink backup`.")],
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Replace a database that holds data (stop the web process and workers first).",
        ),
    ] = False,
) -> None:
    """Restore the database from FILE, then say whether `ledgerlink migrate` is needed and
    whether the configured vault key decrypts the restored credentials."""
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        report = put_back(settings, file, replace=replace, actor=cli_principal().actor)
    except BackupError as exc:
        raise failure(f"Restore failed: {exc}") from None
    for line in report.lines():
        out.print(line, soft_wrap=True)
    problem = report.vault_problem()
    if problem is not None:
        raise failure(problem, code=3)
