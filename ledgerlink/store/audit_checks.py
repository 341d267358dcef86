"""Checking the audit chain against its signed checkpoints, incrementally.

Two kinds of check, each recorded in ``audit_checks`` for the portal, the API and alerts:

* **incremental** — checks the signature of the newest checkpoint, that its entry still
  carries the hash it names, and walks only the entries written since. With a checkpoint
  written at the end of every successful check, this reads a handful of rows: what the
  portal, the API and the quarter-hourly job run. ``max_rows`` bounds what one call may
  read (the portal and API pass ``INCREMENTAL_BUDGET``); a check cut short still writes a
  checkpoint as far as it got, so the next one continues from there.
* **full** — walks the whole chain from the first entry, checks every line of the
  checkpoint file (links and signatures) and that every checkpointed entry still carries
  its hash. Seconds on a large log: an administrator's action (one at a time, at most
  once a minute), the daily job, and the CLI.

Either way a successful check appends a checkpoint for the entry it verified up to, so
the next incremental check starts there. A check never writes a checkpoint for a chain
it did not verify.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ledgerlink.store import audit
from ledgerlink.store.audit_anchors import (
    AnchorFile,
    AnchorKeys,
    AnchorProblem,
    Checkpoint,
    check_lines,
    check_newest,
)
from ledgerlink.store.audit_models import AuditCheckState
from ledgerlink.store.db import Database

if TYPE_CHECKING:
    from ledgerlink.settings import Settings
    from ledgerlink.vault import Vault

log = structlog.get_logger("ledgerlink.audit")

Kind = Literal["incremental", "full"]

#: Entries a portal or API call may read: a few tens of milliseconds at most.
INCREMENTAL_BUDGET = 2000
#: A full check may be started by hand at most this often.
FULL_PAUSE = timedelta(seconds=60)
#: A full check that has "run" this long is taken to have died (its process was killed).
FULL_STALE = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """What one check found.

    ``entries`` is how far the chain is verified (entries 1..``entries``; ``head_hash``
    is that entry's hash); ``complete`` is False when a budget stopped the check before
    ``head_seq``, the audit head's entry. ``rows_read`` counts the entries read.
    ``anchor_seq`` is the checkpoint the check started from (None: the first entry) and
    ``anchored_seq`` the checkpoint it wrote (None: nothing new to anchor).
    """

    kind: Kind
    ok: bool
    complete: bool
    entries: int
    head_seq: int
    head_hash: str
    rows_read: int
    anchor_seq: int | None
    anchored_seq: int | None
    problem: str | None
    first_bad_seq: int | None
    checked_at: datetime
    checked_by: str
    anchor_file: str

    @property
    def summary(self) -> str:
        if not self.ok:
            return self.problem or "The audit chain failed verification."
        if not self.complete:
            return (
                f"Entries 1 to {self.entries} verified; entries up to {self.head_seq} are checked "
                "by the next check."
            )
        anchored = (
            f" against the signed checkpoint at entry {self.anchor_seq}" if self.anchor_seq else ""
        )
        return f"The chain is intact: {self.entries} entries verified{anchored}."


def check(
    settings: Settings,
    db: Database,
    vault: Vault,
    *,
    kind: Kind = "incremental",
    checked_by: str,
    max_rows: int | None = None,
    expect_head: str | None = None,
    now: datetime | None = None,
) -> AuditCheck:
    """Check the chain against the checkpoints, record the outcome and, when it verified
    further than the newest checkpoint, write a new one. A broken chain is logged at error
    level; raising or alerting is the caller's choice.

    ``expect_head`` (full checks only) is a head hash recorded by hand earlier; a
    malformed one raises ``ValueError`` before anything is read.
    """
    if expect_head is not None:
        audit.parse_expected_head(expect_head)
    now = now or datetime.now(UTC)
    anchors = AnchorFile.for_settings(settings)
    keys = AnchorKeys.from_vault(vault)
    newest: Checkpoint | None = None
    lines: list[Checkpoint] = []
    problem: str | None
    try:
        if kind == "full":
            lines = anchors.read_all()
            newest = lines[-1] if lines else None
            problem = check_lines(lines, keys, anchors.path)
        else:
            newest = anchors.newest()
            problem = check_newest(newest, keys, anchors.path)
    except AnchorProblem as exc:
        problem = str(exc)
    except OSError as exc:
        problem = (
            f"The audit checkpoint file {anchors.path} cannot be read ({exc.strerror}); make "
            "it readable by the user ledgerlink runs as, then check again."
        )

    if problem is not None:
        report = audit.VerifyReport(ok=False, entries=0, head_hash=audit.GENESIS_HASH)
    else:
        with db.read() as session:
            if kind == "full":
                report = audit.verify(
                    session,
                    expect_head=expect_head,
                    checkpoints={line.seq: line.hash for line in lines},
                )
            else:
                report = audit.verify(
                    session,
                    resume=None if newest is None else audit.Resume(newest.seq, newest.hash),
                    max_rows=max_rows,
                )
        problem = report.problem

    anchored: int | None = None
    if report.ok and report.entries > (newest.seq if newest else 0):
        try:
            written = anchors.extend(
                keys, seq=report.entries, digest=report.head_hash, reason=kind, now=now
            )
        except (OSError, AnchorProblem) as exc:
            log.warning("audit.checkpoint_not_written", file=str(anchors.path), error=str(exc))
        else:
            anchored = None if written is None else written.seq

    result = AuditCheck(
        kind=kind,
        ok=report.ok,
        complete=report.complete,
        entries=report.entries,
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        rows_read=report.rows_read,
        anchor_seq=None if newest is None else newest.seq,
        anchored_seq=anchored,
        problem=problem,
        first_bad_seq=report.first_bad_seq,
        checked_at=now,
        checked_by=checked_by,
        anchor_file=str(anchors.path),
    )
    _store(db, result)
    if result.ok:
        log.info(
            "audit.chain_verified",
            kind=kind,
            entries=result.entries,
            rows_read=result.rows_read,
            anchored=anchored,
        )
    else:
        log.error(
            "audit.chain_broken", kind=kind, first_bad_seq=result.first_bad_seq, problem=problem
        )
    return result


# ---- the recorded outcome -------------------------------------------------------------------


def _store(db: Database, result: AuditCheck) -> None:
    with db.transaction() as session:
        row = _row(session, result.kind)
        row.checked_at = result.checked_at
        row.ok = result.ok
        row.complete = result.complete
        row.entries = result.entries
        row.head_hash = result.head_hash
        row.head_seq = result.head_seq
        row.rows_read = result.rows_read
        row.anchor_seq = result.anchor_seq
        row.problem = result.problem
        row.first_bad_seq = result.first_bad_seq
        row.checked_by = result.checked_by
        if result.ok:
            row.alerted_problem = None  # a later failure is news again
        if result.kind == "full":
            row.running_since = None


def _row(session: Session, kind: str) -> AuditCheckState:
    """The row for ``kind``, created if missing (concurrent first checks both succeed)."""
    values = {"kind": kind, "complete": True, "entries": 0, "head_seq": 0, "rows_read": 0}
    if session.get_bind().dialect.name == "postgresql":
        session.execute(pg_insert(AuditCheckState).values(values).on_conflict_do_nothing())
    else:
        session.execute(sqlite_insert(AuditCheckState).values(values).on_conflict_do_nothing())
    row = session.get(AuditCheckState, kind, populate_existing=True)
    assert row is not None
    return row


@dataclass(frozen=True, slots=True)
class LastChecks:
    """The latest recorded check of each kind, for showing without running one."""

    incremental: AuditCheckState | None
    full: AuditCheckState | None

    @property
    def latest(self) -> AuditCheckState | None:
        done = [row for row in (self.incremental, self.full) if row and row.checked_at]
        return max(done, key=lambda row: row.checked_at or datetime.min) if done else None

    @property
    def broken(self) -> AuditCheckState | None:
        """The latest check, when it failed: what the dashboard and audit page warn about."""
        latest = self.latest
        return latest if latest is not None and latest.ok is False else None

    @property
    def full_running(self) -> bool:
        return self.full is not None and self.full.running_since is not None


def last_checks(db: Database) -> LastChecks:
    with db.read() as session:
        rows = {row.kind: row for row in session.scalars(select(AuditCheckState))}
        for row in rows.values():
            session.expunge(row)
    return LastChecks(incremental=rows.get("incremental"), full=rows.get("full"))


# ---- full checks: one at a time ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FullRefusal:
    """Why a full check requested by hand cannot start now (HTTP status and words)."""

    status: int
    title: str
    detail: str


def refuse_full(session: Session, now: datetime) -> FullRefusal | None:
    """Why a full check requested by hand cannot start now, or None."""
    row = session.get(AuditCheckState, "full")
    if row is None:
        return None
    if row.running_since is not None and now - row.running_since < FULL_STALE:
        return FullRefusal(
            409,
            "A full verification is running",
            f"A full verification has been running since {_when(row.running_since)}; wait "
            "for it to finish and read its result on the Audit page.",
        )
    if row.checked_at is not None and now - row.checked_at < FULL_PAUSE:
        wait = int((FULL_PAUSE - (now - row.checked_at)).total_seconds()) + 1
        return FullRefusal(
            429,
            "Too soon",
            f"A full verification finished at {_when(row.checked_at)}; start another in "
            f"{wait} s, or read its result on the Audit page.",
        )
    return None


def claim_full(db: Database, now: datetime) -> bool:
    """Mark a full check as running unless one already is; True when this caller runs it."""
    with db.transaction() as session:
        _row(session, "full")
        claimed = session.execute(
            update(AuditCheckState)
            .where(
                AuditCheckState.kind == "full",
                (AuditCheckState.running_since.is_(None))
                | (AuditCheckState.running_since < now - FULL_STALE),
            )
            .values(running_since=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(claimed, "rowcount", 0))


def release_full(db: Database) -> None:
    with db.transaction() as session:
        session.execute(
            update(AuditCheckState)
            .where(AuditCheckState.kind == "full")
            .values(running_since=None)
            .execution_options(synchronize_session=False)
        )


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
