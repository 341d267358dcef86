"""Background jobs: one port, two back-ends.

Write a task once with ``@tasks.task(...)`` (``registry``), enqueue it in your own
transaction with ``job_queue(settings, db).enqueue(session, ...)`` (``port``); it runs
under the embedded runner on SQLite or procrastinate on PostgreSQL.
"""

from ledgerlink.jobs.port import JobHealth, JobInfo, JobQueue, job_queue
from ledgerlink.jobs.registry import JobContext, RetryPolicy, load_task_modules, tasks

__all__ = [
    "JobContext",
    "JobHealth",
    "JobInfo",
    "JobQueue",
    "RetryPolicy",
    "job_queue",
    "load_task_modules",
    "tasks",
]
