"""What jobs exist: task functions, their retry policies and periodic schedules.

The registry is the one place both job back-ends read from, so a task is written once
and runs the same under the embedded runner (SQLite) and procrastinate (PostgreSQL).
Tasks are plain synchronous functions ``func(ctx: JobContext, **args)``; ``args`` are
JSON values because they are stored in the database until a worker picks the job up.
"""

from __future__ import annotations

import importlib
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import structlog
from croniter import croniter

if TYPE_CHECKING:
    from ledgerlink.settings import Settings
    from ledgerlink.store.db import Database

_log = structlog.get_logger("ledgerlink.jobs")

#: Keys the back-ends add to the arguments of a periodic job; tasks never see them.
PERIODIC_MARK = "_periodic"
PERIODIC_TIMESTAMP = "timestamp"  # procrastinate's name for the tick, kept on both back-ends
RESERVED_ARGS = frozenset({PERIODIC_MARK})

BUILTIN_MODULE = "ledgerlink.jobs.builtin"
#: Capabilities whose jobs every worker must know, whichever process enqueued them.
CAPABILITY_MODULES = (
    "ledgerlink.members.bulk",
    "ledgerlink.sync.runs",
    "ledgerlink.sync.schedules",
    "ledgerlink.sync.realtime",
    "ledgerlink.sync.realtime_inbound_jobs",
    "ledgerlink.payments.jobs",
    "ledgerlink.payments.notify",
    "ledgerlink.invoice_requests.jobs",
    "ledgerlink.paylinks.jobs",
    "ledgerlink.recon.jobs",
    "ledgerlink.recon.notify",
    "ledgerlink.audit_jobs",
)


class Jitter(Protocol):
    """The part of ``random.Random`` backoff needs; tests pass a deterministic one."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing task is tried again.

    ``max_attempts`` counts every run, the first included: 1 means never retry.
    """

    max_attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def delay_for(self, attempt: int, rng: Jitter | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based).

        Full jitter: a uniform draw from [0, min(max_delay, base_delay * 2^(attempt-1))].
        Spreading retries over the whole window keeps a crowd of jobs that failed
        together (an upstream outage) from hammering it again in lockstep.
        """
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        exponent = min(attempt - 1, 64)  # beyond this the cap has long been reached
        cap = min(self.max_delay, self.base_delay * 2.0**exponent)
        delay = (rng or random).uniform(0.0, cap)
        return min(max(delay, 0.0), cap)


class JobInterrupted(Exception):
    """Raised by a task that stopped between units of work because its runner is stopping
    (``JobContext.stopping``). Either back-end puts the job back at once without
    counting an attempt; the next run continues from the task's own checkpoint."""


@dataclass(frozen=True)
class JobContext:
    """What a running task gets besides its arguments."""

    job_id: int
    attempt: int  # 1-based; 2 and up means earlier attempts failed or were interrupted
    settings: Settings
    db: Database
    #: For jobs started by a periodic schedule, the tick they stand for (UTC).
    scheduled_for: datetime | None = None
    #: Set when the runner is asked to stop (either back-end). A long task checks it between
    #: units of work and stops early: returning when nothing is left half-done, raising
    #: :class:`JobInterrupted` when it should run again (queued again, attempt uncounted).
    stopping: threading.Event = field(default_factory=threading.Event)


TaskFunction = Callable[..., None]
F = TypeVar("F", bound=TaskFunction)
#: Called once a job has failed for good, with its arguments and the last error: a task
#: whose job stands for a row users watch (a sync run, a bulk link run) marks it failed
#: there, or the row would show "running" for ever.
GiveUp = Callable[["Database", dict[str, Any], str], None]

#: A resumable job's runs cut short by its worker dying are not counted as attempts, but
#: not without end either: a job that takes its worker down every time (out of memory on
#: one huge page) fails after this many.
MAX_STALLS = 25


def stall_error(spec: TaskSpec | None, lost: str, attempt: int, stalls: int, final: bool) -> str:
    """Why a job went back to the queue (or failed) after its worker died under it, as both
    back-ends word it; ``lost`` says how the worker was seen to go."""
    if spec is not None and spec.resumable:
        limit = f"; a job that never outlives its worker fails after {MAX_STALLS}" if final else ""
        return f"{lost} (killed or hung): {stalls} time(s) so far{limit}"
    return f"{lost} during attempt {attempt} (killed or hung)"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    func: TaskFunction
    retry: RetryPolicy
    queue: str
    #: The task keeps its own checkpoint (a sync run's pages, a bulk run's items), so a run
    #: its worker did not live through (SIGKILL, OOM, power loss) cost nothing but time:
    #: it is queued again uncounted, as a graceful hand-back is, up to MAX_STALLS times.
    #: Without it a long sync in a fleet whose workers get restarted now and then runs out
    #: of attempts without ever failing.
    resumable: bool = False
    on_given_up: GiveUp | None = None

    def stall_is_final(self, attempts_before: int, stalls: int) -> bool:
        """Whether a run its worker did not live through ends the job (``attempts_before``
        runs had ended before it; ``stalls`` counts this one)."""
        if self.resumable:
            return stalls >= MAX_STALLS
        return attempts_before + 1 >= self.retry.max_attempts

    def given_up(self, db: Database, args: dict[str, Any], error: str) -> None:
        """Tell the task its job failed for good (see :data:`GiveUp`); a failure to do so is
        logged, never raised: the job's own bookkeeping comes first."""
        if self.on_given_up is None:
            return
        try:
            self.on_given_up(db, {k: v for k, v in args.items() if k not in RESERVED_ARGS}, error)
        except Exception as exc:
            _log.warning("job.given_up_hook_failed", task=self.name, error=repr(exc)[:500])


@dataclass(frozen=True)
class PeriodicSchedule:
    name: str
    cron: str
    task: str
    args: dict[str, Any] = field(default_factory=dict)


class UnknownTask(ValueError):
    """A job names a task no loaded module registered."""


class TaskRegistry:
    """Task functions and periodic schedules by name."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskSpec] = {}
        self._periodic: dict[str, PeriodicSchedule] = {}

    def task(
        self,
        name: str,
        *,
        retry: RetryPolicy = RetryPolicy(),
        queue: str = "default",
        resumable: bool = False,
        on_given_up: GiveUp | None = None,
    ) -> Callable[[F], F]:
        """Register ``func(ctx, **args)`` as the task ``name`` (see :class:`TaskSpec` for
        ``resumable`` and ``on_given_up``)."""

        def register(func: F) -> F:
            existing = self._tasks.get(name)
            if existing is not None and _origin(existing.func) != _origin(func):
                raise ValueError(
                    f"job task {name!r} is already registered by {_origin(existing.func)}"
                )
            # Same origin: a module imported again (reload); the newer function wins.
            self._tasks[name] = TaskSpec(
                name=name,
                func=func,
                retry=retry,
                queue=queue,
                resumable=resumable,
                on_given_up=on_given_up,
            )
            return func

        if not name or len(name) > 128:
            raise ValueError("a job task name needs 1 to 128 characters")
        return register

    def periodic(self, name: str, cron: str, task: str, args: dict[str, Any] | None = None) -> None:
        """Run ``task`` with ``args`` at every tick of ``cron`` (croniter syntax, UTC;
        a sixth field gives seconds). Every tick runs once however many workers run."""
        if not croniter.is_valid(cron):
            raise ValueError(f"periodic schedule {name!r}: {cron!r} is not a cron expression")
        args = dict(args or {})
        clash = {PERIODIC_MARK, PERIODIC_TIMESTAMP} & set(args)
        if clash:
            raise ValueError(
                f"periodic schedule {name!r}: argument names {sorted(clash)} are reserved"
            )
        schedule = PeriodicSchedule(name=name, cron=cron, task=task, args=args)
        existing = self._periodic.get(name)
        if existing is not None and existing != schedule:
            raise ValueError(f"periodic schedule {name!r} is already declared differently")
        self._periodic[name] = schedule

    def remove_periodic(self, name: str) -> None:
        """Forget a schedule (tests, plug-ins being unloaded); unknown names are ignored."""
        self._periodic.pop(name, None)

    def get(self, name: str) -> TaskSpec | None:
        return self._tasks.get(name)

    def require(self, name: str) -> TaskSpec:
        """The task ``name``, or an error that lists what is known (typos are the usual cause)."""
        spec = self._tasks.get(name)
        if spec is None:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise UnknownTask(
                f"unknown job task {name!r}; known tasks: {known}. Is the module that "
                "defines it listed in LEDGERLINK_TASK_MODULES?"
            )
        return spec

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def specs(self) -> Iterable[TaskSpec]:
        return list(self._tasks.values())

    def schedules(self) -> list[PeriodicSchedule]:
        return list(self._periodic.values())

    def check_schedules(self) -> None:
        """Fail at start-up, not at the first tick, when a schedule names no task."""
        for schedule in self._periodic.values():
            if schedule.task not in self._tasks:
                raise UnknownTask(
                    f"periodic schedule {schedule.name!r} runs unknown task {schedule.task!r}"
                )


def _origin(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"


#: The process-wide registry every task module registers into.
tasks = TaskRegistry()


def load_task_modules(settings: Settings) -> None:
    """Import the built-in tasks and the configured plug-in modules so their tasks and
    schedules are registered before anything enqueues or runs a job."""
    for module in [BUILTIN_MODULE, *CAPABILITY_MODULES, *settings.task_modules]:
        importlib.import_module(module)
    tasks.check_schedules()
