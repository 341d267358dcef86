"""The process-wide parts every entry point needs (web, worker, CLI), built once from
settings: the database, the vault and the job queue."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from ledgerlink.jobs.port import JobQueue, job_queue
from ledgerlink.jobs.registry import load_task_modules
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.vault import Vault, load_vault

if TYPE_CHECKING:
    from ledgerlink.jobs.registry import JobContext


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def db(self) -> Database:
        return Database(
            self.settings.resolved_database_url,
            sqlite_busy_timeout_ms=self.settings.sqlite_busy_timeout_ms,
        )

    @cached_property
    def vault(self) -> Vault:
        return load_vault(self.settings)

    @cached_property
    def jobs(self) -> JobQueue:
        load_task_modules(self.settings)
        return job_queue(self.settings, self.db)

    @classmethod
    def for_job(cls, ctx: JobContext) -> Runtime:
        """The runtime a job task works with: the worker's settings, and its database
        engine shared instead of a second pool opened per job."""
        runtime = cls(ctx.settings)
        runtime.__dict__["db"] = ctx.db
        return runtime

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
