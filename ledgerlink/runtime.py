"""The process-wide parts every entry point needs (web, worker, CLI), built once from
settings: the database, the vault and the job queue."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.connectors import factory
from ledgerlink.connectors.base import CardGateway, Ledger
from ledgerlink.jobs.port import JobQueue, job_queue
from ledgerlink.jobs.registry import load_task_modules
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database, owner_only
from ledgerlink.store.mapping_repo import MappingRepository, mapping_repository
from ledgerlink.sync import realtime_outbox
from ledgerlink.vault import Vault, load_vault

if TYPE_CHECKING:
    from ledgerlink.jobs.registry import JobContext
    from ledgerlink.store.models import Connection


@dataclass
class Runtime:
    """The composition root: web routes (through ``web/deps.py``), CLI commands and job
    tasks get every collaborator a use case needs from here, so each is wired once."""

    settings: Settings

    def __post_init__(self) -> None:
        protect_var_dir(self.settings)

    @cached_property
    def db(self) -> Database:
        db = Database(
            self.settings.resolved_database_url,
            sqlite_busy_timeout_ms=self.settings.sqlite_busy_timeout_ms,
        )
        realtime_outbox.dispatch_through(db, self)  # member changes enqueue real-time writes
        return db

    @cached_property
    def clock(self) -> Clock:
        """The time leases are judged on (a claim a crash left, see
        :mod:`ledgerlink.payments.lapsed_claims`); tests put a ``ManualClock`` here."""
        return SYSTEM_CLOCK

    @cached_property
    def vault(self) -> Vault:
        return load_vault(self.settings)

    @cached_property
    def jobs(self) -> JobQueue:
        load_task_modules(self.settings)
        return job_queue(self.settings, self.db)

    @cached_property
    def mappings(self) -> MappingRepository:
        """The installation's mapping specs (with its configuration directory's overrides)."""
        return mapping_repository(self.settings)

    def ledger_for(
        self, connection: Connection, transport: httpx.AsyncBaseTransport | None = None
    ) -> Ledger:
        """The ledger adapter for a stored ledger connection (settings and vault secrets)."""
        return factory.ledger_for(self, connection, transport)

    def gateway_for(
        self, connection: Connection, transport: httpx.AsyncBaseTransport | None = None
    ) -> CardGateway:
        """The card gateway adapter for a stored PayTrace connection."""
        return factory.gateway_for(self, connection, transport)

    @classmethod
    def for_job(cls, ctx: JobContext) -> Runtime:
        """The runtime a job task works with: the worker's settings, and its database
        engine shared instead of a second pool opened per job."""
        runtime = cls(ctx.settings)
        runtime.__dict__["db"] = ctx.db
        realtime_outbox.dispatch_through(ctx.db, runtime)
        return runtime

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()


def protect_var_dir(settings: Settings) -> None:
    """``var/`` and everything in it (databases, the vault key, simulator state, logs)
    readable by ledgerlink's user only: the directory 0700, files without group or other
    permissions. Run at every start, so copies and older versions' files are fixed too."""
    var = settings.var_dir
    if not var.is_dir():
        return
    for directory, _dirs, files in os.walk(var):
        owner_only(Path(directory))
        for name in files:
            owner_only(Path(directory) / name)
