"""The append-only, hash-chained audit log.

Every change to money or configuration appends one entry, in the same transaction as the
change, so the log can neither miss a change that happened nor record one that rolled
back. Each entry's hash covers its content and the previous entry's hash::

    hash(n) = sha256(hash(n-1) as hex + canonical_json({seq, at, actor, action,
                                                         entity_type, entity_id,
                                                         before, after}))

starting from ``GENESIS_HASH``. Changing, deleting or reordering any entry breaks every
link after it, which ``verify`` finds and names. The ``audit_head`` row holds the last
sequence number and hash: appenders lock it (which serialises them on every back-end and
makes ``seq`` gap-free), and ``verify`` uses it to notice a deleted tail.

Someone with write access to the database could still rebuild the whole chain and the
head consistently. Signed checkpoints kept outside the database catch that
(``store/audit_anchors.py``, checked by ``store/audit_checks.py``): ``verify`` takes
them as ``checkpoints`` (entry → hash it must still carry) and can ``resume`` from one,
so a check reads only the entries written since. A head hash recorded by hand and
passed back as ``expect_head`` works too.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from types import EllipsisType
from typing import Any, overload

import structlog
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from ledgerlink.store.db import Database
from ledgerlink.store.models import AuditEntry, AuditHead
from ledgerlink.store.types import utcnow

log = structlog.get_logger("ledgerlink.audit")

#: The ``prev_hash`` of entry 1, and the head hash of an empty chain.
GENESIS_HASH = "0" * 64

#: What a secret looks like in an audit entry (and wherever else one is shown).
REDACTED = "••••••••"

#: Field names redacted in every entry even if a caller forgot ``redact_secrets``: a last
#: line of defence, not a substitute (a secret under another name would still leak).
ALWAYS_SECRET_FIELDS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "client_secret",
        "refresh_token",
        "access_token",
        "api_key",
        "private_key",
        "card_number",
        "cvv",
        "cvv2",
        "track_data",
    }
)

_SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
_EN_DASH = "\u2013"  # en dash, as people write ranges ("entries 5-6")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_LIMITS = {"actor": 254, "action": 100, "entity_type": 64, "entity_id": 100}


# ---- canonical form ---------------------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """The one byte string ``obj`` hashes as: deterministic whatever the key order.

    Sorted keys, no whitespace, UTF-8 (not ``\\u`` escapes), datetimes as ISO-8601 UTC
    with microseconds and ``Z``. It is also stable across a trip through the database,
    which is what lets ``verify`` recompute a hash from what it reads back: tuples become
    lists, integral floats are written as integers (PostgreSQL's JSONB returns ``1e16``
    as ``10000000000000000``), and anything JSON cannot round-trip is refused rather than
    silently converted: ``Decimal`` (amounts are integer minor units), NaN and infinity,
    naive datetimes, non-string keys, NUL characters (PostgreSQL cannot store them) and
    unknown types.
    """
    return json.dumps(
        _normalise(obj, "$"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def _normalise(value: Any, path: str) -> Any:
    """``value`` as plain JSON types, exactly as it will read back from the database."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = str.__str__(value)  # the characters, not an Enum's str()
        if "\x00" in text:
            raise ValueError(f"audit value at {path} contains a NUL character")
        return text
    if isinstance(value, int):
        return int(value)
    if isinstance(value, Decimal):
        raise TypeError(
            f"audit value at {path} is a Decimal; record amounts as integer minor units "
            "(Money.minor) so that hashes are exact"
        )
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit value at {path} is {value}; JSON cannot hold it")
        return int(value) if value.is_integer() else value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"audit value at {path} is a naive datetime; use datetime.now(UTC)")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"audit document at {path} has a {type(key).__name__} key {key!r}; "
                    "use string keys (JSON turns others into strings, which changes the hash)"
                )
            out[_normalise(key, path)] = _normalise(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_normalise(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"audit value at {path} is a {type(value).__name__}; use str, int, bool, None, "
        "an aware datetime, or lists and dicts of those"
    )


def chain_hash(
    prev_hash: str,
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> str:
    """The hash an entry with this content must carry after ``prev_hash``."""
    payload = canonical_json(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "before": before,
            "after": after,
        }
    )
    return hashlib.sha256(prev_hash.encode("ascii") + payload).hexdigest()


# ---- redaction --------------------------------------------------------------------------


@overload
def redact_secrets(d: None, secret_fields: Iterable[str]) -> None: ...
@overload
def redact_secrets(d: Mapping[str, Any], secret_fields: Iterable[str]) -> dict[str, Any]: ...
def redact_secrets(
    d: Mapping[str, Any] | None, secret_fields: Iterable[str]
) -> dict[str, Any] | None:
    """A copy of ``d`` with every key named in ``secret_fields`` (at any depth) replaced by
    ``REDACTED`` when it holds a value, so the entry shows *that* a secret was set or
    changed, never what it is.

    Callers MUST pass ``before``/``after`` through this with the names of their secret
    fields: the audit chain is append-only and exported to auditors, so a secret written
    into it can never be taken back out. ``record`` redacts ``ALWAYS_SECRET_FIELDS``
    itself as a safety net, but only the caller knows all of its secret names.
    """
    if d is None:
        return None
    names = frozenset(secret_fields)
    redacted = _redact(d, names)
    assert isinstance(redacted, dict)
    return redacted


def _redact(value: Any, names: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {
            key: (REDACTED if key in names and item not in (None, "") else _redact(item, names))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item, names) for item in value]
    return value


def _document(value: Mapping[str, Any] | None, name: str, action: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"audit {name} must be a dict or None, not {type(value).__name__}")
    normal = _normalise(value, name)
    safe = _redact(normal, ALWAYS_SECRET_FIELDS)
    if safe != normal:
        log.warning(
            "audit.unredacted_secret",
            action=action,
            document=name,
            hint="pass before/after through audit.redact_secrets",
        )
    assert isinstance(safe, dict)
    return safe


# ---- appending --------------------------------------------------------------------------

# Core statements on the table, built once: appending is on the path of every change, and
# ORM-level UPDATEs would add bookkeeping we do not need (no AuditHead object is loaded).
_head = AuditHead.__table__.c
_ADVANCE_HEAD = (
    update(AuditHead.__table__)  # type: ignore[arg-type]
    .where(_head.id == 1)
    .values(seq=_head.seq + 1)
    .returning(_head.seq, _head.hash)
)
_SET_HEAD_HASH = (
    update(AuditHead.__table__)  # type: ignore[arg-type]
    .where(_head.id == 1)
    .values(hash=bindparam("digest"))
)


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | int | None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry in the caller's session, i.e. in the same transaction as the change
    it records: if that transaction rolls back, so does the entry, leaving no gap.

    The head row is locked first (``UPDATE … RETURNING``), so concurrent appenders queue
    behind each other until the holder commits and each links to the one before. Call
    this after the change itself, near the end of the transaction: the lock is held until
    commit, and taking it early makes every other appender wait for the rest of your work.

    ``before``/``after`` must already be redacted (``redact_secrets``); they are stored
    in their canonical JSON form (datetimes as ISO strings) so the stored entry is exactly
    what was hashed.
    """
    if session.get_bind().dialect.name == "sqlite" and not _SQLITE_RETURNING:
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version} is too old for the audit chain, which needs "
            "3.35 or newer (UPDATE … RETURNING); use a newer Python/SQLite or PostgreSQL"
        )
    key = None if entity_id is None else str(entity_id)
    for field, value in (
        ("actor", actor),
        ("action", action),
        ("entity_type", entity_type),
        ("entity_id", key),
    ):
        if value is None:
            continue
        if field != "entity_id" and not value:
            raise ValueError(f"audit {field} must not be empty")
        if len(value) > _LIMITS[field]:
            raise ValueError(f"audit {field} is longer than {_LIMITS[field]} characters")
    before_doc = _document(before, "before", action)
    after_doc = _document(after, "after", action)

    head = session.execute(_ADVANCE_HEAD).one_or_none()
    if head is None:
        raise RuntimeError(
            "the audit_head row is missing, so nothing can be audited; run "
            "`ledgerlink migrate` on a new database, or restore this one from backup"
        )
    seq, prev_hash = int(head[0]), str(head[1])
    at = utcnow()  # taken under the lock, so times follow seq order
    digest = chain_hash(
        prev_hash,
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=key,
        before=before_doc,
        after=after_doc,
    )
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=key,
        before=before_doc,
        after=after_doc,
        prev_hash=prev_hash,
        hash=digest,
    )
    session.add(entry)
    session.execute(_SET_HEAD_HASH, {"digest": digest})
    return entry


# ---- verifying --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of walking the chain.

    ``entries`` counts the entries that verified (all of them when ``ok`` and
    ``complete``); ``head_hash`` is the hash of the last of those — worth recording
    elsewhere and passing back as ``expect_head`` later. ``first_bad_seq`` names the first
    entry found wrong (for a deletion, the first missing one); ``problem`` says what was
    found and what to do. ``rows_read`` counts the entries this walk read (a resumed walk
    reads only those after its starting point); ``complete`` is False when ``max_rows``
    stopped it before the head (what it read was fine; the rest is for the next walk).
    """

    ok: bool
    entries: int
    head_hash: str
    problem: str | None = None
    first_bad_seq: int | None = None
    last_good_at: datetime | None = None
    rows_read: int = 0
    complete: bool = True
    head_seq: int = 0


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a walk starts: entry ``seq`` is known to have carried ``hash`` (a signed
    checkpoint says so). The walk re-checks that entry and then reads only later ones."""

    seq: int
    hash: str


_COLUMNS = (
    AuditEntry.seq,
    AuditEntry.at,
    AuditEntry.actor,
    AuditEntry.action,
    AuditEntry.entity_type,
    AuditEntry.entity_id,
    AuditEntry.before,
    AuditEntry.after,
    AuditEntry.prev_hash,
    AuditEntry.hash,
)


def verify(
    session: Session,
    *,
    expect_head: str | None = None,
    resume: Resume | None = None,
    max_rows: int | None = None,
    checkpoints: Mapping[int, str] | None = None,
) -> VerifyReport:
    """Walk the chain in ``seq`` order, streaming, and report the first thing wrong.

    Finds an edited entry (content no longer matches its hash), deleted entries (a gap in
    ``seq``), reordered entries (an entry links to one other than its predecessor), an
    entry rewritten with a recomputed hash (its successor still links to the original),
    a deleted tail (``audit_head`` records more than the log holds) and, given
    ``expect_head`` or ``checkpoints`` (entry number → the hash a signed checkpoint
    recorded for it), a chain rebuilt since that hash was recorded.

    ``resume`` starts from a checkpointed entry instead of the genesis; ``max_rows`` stops
    after that many entries (``complete`` is then False). The head row is read first and
    entries after it are ignored, so appenders committing meanwhile (PostgreSQL's READ
    COMMITTED shows them) are neither a false alarm nor checked; the next run covers them.
    """
    wanted = parse_expected_head(expect_head)
    head = session.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
    ).one_or_none()
    if head is None:
        return VerifyReport(
            ok=False,
            entries=0,
            head_hash=GENESIS_HASH,
            problem="The audit_head row is missing, so the end of the chain cannot be "
            "checked. " + _advice(None),
        )
    head_seq, head_hash = int(head[0]), str(head[1])
    marks = dict(checkpoints or {})

    walk = _Walk()
    if resume is not None and resume.seq > 0:
        started = _resume(session, walk, resume, head_seq)
        if started is not None:
            return started
    stop_at = head_seq if max_rows is None else min(head_seq, walk.next_seq - 1 + max_rows)
    bad: Any = None
    result = session.execute(
        select(*_COLUMNS)
        .where(AuditEntry.seq >= walk.next_seq, AuditEntry.seq <= stop_at)
        .order_by(AuditEntry.seq)
        .execution_options(yield_per=1000)
    )
    try:
        for row in result:
            walk.rows_read += 1
            if row.seq != walk.next_seq or row.prev_hash != walk.prev_hash:
                bad = row
                break
            if _recompute(row) != row.hash:
                bad = row
                break
            if row.seq in marks and marks[row.seq] != row.hash:
                return walk.report(_rebuilt_since_checkpoint(row.seq), row.seq, good_at=None)
            walk.accept(row)
    finally:
        result.close()

    if bad is not None:
        return _diagnose(session, walk, bad)
    if stop_at < head_seq and walk.next_seq - 1 == stop_at:
        return VerifyReport(
            ok=True,
            entries=walk.count,
            head_hash=walk.prev_hash,
            last_good_at=walk.last_at,
            rows_read=walk.rows_read,
            complete=False,
            head_seq=head_seq,
        )
    beyond = [seq for seq in marks if seq > walk.next_seq - 1]
    if beyond and walk.next_seq - 1 >= head_seq:
        last = walk.next_seq - 1
        return walk.report(
            f"Audit chain broken: a signed checkpoint records entry {max(beyond)}, but the "
            f"log ends at entry {last}: entries were deleted and the audit head rewritten "
            "to hide it.",
            last + 1,
        )
    return _check_head(session, walk, head_seq, head_hash, wanted)


def _resume(session: Session, walk: _Walk, resume: Resume, head_seq: int) -> VerifyReport | None:
    """Start ``walk`` at the checkpointed entry, or report why the chain no longer has it."""
    row = session.execute(select(*_COLUMNS).where(AuditEntry.seq == resume.seq)).one_or_none()
    if row is not None:
        walk.rows_read += 1
    if row is None or resume.seq > head_seq:
        return walk.report(
            f"Audit chain broken: a signed checkpoint records entry {resume.seq}, but "
            + (
                f"the log ends at entry {head_seq}: entries were deleted (the log truncated) "
                "and the audit head rewritten to hide it."
                if resume.seq > head_seq
                else "the log no longer has that entry: it was deleted."
            ),
            min(resume.seq, head_seq + 1),
            good_at=None,
        )
    if row.hash != resume.hash:
        return walk.report(_rebuilt_since_checkpoint(resume.seq), resume.seq, good_at=None)
    if _recompute(row) != row.hash:
        return walk.report(
            f"Audit chain broken: entry {row.seq} ({_describe(row)}) was edited after it was "
            "written: its content no longer matches its hash.",
            row.seq,
            good_at=None,
        )
    walk.next_seq, walk.prev_hash, walk.count = resume.seq + 1, resume.hash, resume.seq
    walk.last_at = row.at
    return None


def _rebuilt_since_checkpoint(seq: int) -> str:
    return (
        f"Audit chain broken: entry {seq} no longer carries the hash a signed checkpoint "
        f"recorded for it: entries up to {seq} were edited or deleted and every later hash "
        "recomputed to hide it (or the checkpoints belong to another database)."
    )


def verify_all(db: Database) -> VerifyReport:
    """Verify the whole chain in a read session: for the CLI, the portal and a periodic
    job (a failure there should alert someone)."""
    with db.read() as session:
        report = verify(session)
    if not report.ok:
        log.error("audit.chain_broken", first_bad_seq=report.first_bad_seq, problem=report.problem)
    return report


@dataclass
class _Walk:
    """How far the chain verified, and when its last two good entries were written."""

    next_seq: int = 1
    prev_hash: str = GENESIS_HASH
    count: int = 0
    last_at: datetime | None = None
    second_last_at: datetime | None = None
    rows_read: int = 0

    def accept(self, row: Any) -> None:
        self.next_seq = row.seq + 1
        self.prev_hash = row.hash
        self.count += 1
        self.second_last_at, self.last_at = self.last_at, row.at

    def report(
        self,
        problem: str,
        first_bad_seq: int | None,
        *,
        good_at: datetime | EllipsisType | None = ...,
    ) -> VerifyReport:
        """A failed report; ``good_at`` overrides the last good time when the last accepted
        entry turns out to be the bad one."""
        last_good_at = self.last_at if isinstance(good_at, EllipsisType) else good_at
        return VerifyReport(
            ok=False,
            entries=self.count,
            head_hash=self.prev_hash,
            problem=f"{problem} {_advice(last_good_at)}",
            first_bad_seq=first_bad_seq,
            last_good_at=last_good_at,
            rows_read=self.rows_read,
        )


def _diagnose(session: Session, walk: _Walk, row: Any) -> VerifyReport:
    """Name what is wrong with ``row``, the first entry that did not verify."""
    expected = walk.next_seq
    if row.seq > expected:
        if row.seq == expected + 1:
            missing = f"entry {expected} is"
        else:
            missing = f"entries {expected}{_EN_DASH}{row.seq - 1} are"
        return walk.report(
            f"Audit chain broken: {missing} missing (deleted); the chain jumps from "
            f"entry {expected - 1} to entry {row.seq}.",
            expected,
        )
    if row.seq < expected:  # only possible for seq <= 0: a renumbered entry
        return walk.report(
            f"Audit chain broken: an entry has the invalid sequence number {row.seq} "
            "(entries were renumbered or reordered).",
            expected,
        )

    consistent = _recompute(row) == row.hash
    if row.prev_hash != walk.prev_hash:
        linked = _seq_of_hash(session, row.prev_hash)
        if linked is not None and linked != row.seq - 1:
            return walk.report(
                f"Audit chain broken: entry {row.seq} links to entry {linked} instead of "
                f"entry {row.seq - 1}: entries were reordered (their sequence numbers were "
                "swapped or changed).",
                row.seq,
            )
        if consistent and row.seq > 1:
            return walk.report(
                f"Audit chain broken: entry {row.seq - 1} was changed and its hash "
                f"recomputed to hide it; entry {row.seq} still links to its original hash.",
                row.seq - 1,
                good_at=walk.second_last_at,
            )
        if consistent:
            return walk.report(
                "Audit chain broken: entry 1 does not start from the genesis hash; the "
                "beginning of the chain was deleted or rebuilt.",
                1,
            )
        return walk.report(
            f"Audit chain broken: entry {row.seq} ({_describe(row)}) was altered after it was "
            "written: its link to the previous entry and its hash no longer match.",
            row.seq,
        )
    return walk.report(
        f"Audit chain broken: entry {row.seq} ({_describe(row)}) was edited after it was "
        "written: its content no longer matches its hash.",
        row.seq,
    )


def _check_head(
    session: Session, walk: _Walk, head_seq: int, head_hash: str, wanted: str | None
) -> VerifyReport:
    last = walk.next_seq - 1
    if head_seq > last:
        n = head_seq - last
        return walk.report(
            f"Audit chain broken: the last {n} entr{'y was' if n == 1 else 'ies were'} "
            f"deleted; the log ends at entry {last} but the audit head records entry "
            f"{head_seq}.",
            last + 1,
        )
    if head_hash != walk.prev_hash:
        if last == 0:
            return walk.report(
                "Audit chain broken: the log is empty but the audit head records a hash; the "
                "audit_head row was edited.",
                None,
            )
        return walk.report(
            f"Audit chain broken: entry {last} does not carry the hash the audit head "
            f"recorded for it; it was rewritten with a recomputed hash (or the audit_head "
            "row was edited).",
            last,
            good_at=walk.second_last_at,
        )
    if (
        wanted is not None
        and wanted not in (GENESIS_HASH, walk.prev_hash)
        and _seq_of_hash(session, wanted, up_to=last) is None
    ):
        return walk.report(
            f"Audit chain broken: the head hash recorded earlier ({wanted[:16]}…) is no "
            "longer in the chain, so entries were deleted or rewritten since it was "
            "recorded and the chain was rebuilt to hide it (or that hash came from a "
            "different database).",
            None,
            good_at=None,
        )
    return VerifyReport(
        ok=True,
        entries=walk.count,
        head_hash=walk.prev_hash,
        last_good_at=walk.last_at,
        rows_read=walk.rows_read,
        head_seq=head_seq,
    )


def _recompute(row: Any) -> str:
    return chain_hash(
        row.prev_hash,
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        entity_type=row.entity_type,
        entity_id=row.entity_id,
        before=row.before,
        after=row.after,
    )


def _seq_of_hash(session: Session, digest: str, *, up_to: int | None = None) -> int | None:
    query = select(AuditEntry.seq).where(AuditEntry.hash == digest)
    if up_to is not None:
        query = query.where(AuditEntry.seq <= up_to)
    found = session.scalar(query)
    return None if found is None else int(found)


def parse_expected_head(expect_head: str | None) -> str | None:
    if expect_head is None:
        return None
    wanted = expect_head.strip().lower()
    if not _HEX64.match(wanted):
        raise ValueError(
            "expect_head must be a head hash as `ledgerlink audit verify` prints it: "
            "64 hexadecimal characters"
        )
    return wanted


def _describe(row: Any) -> str:
    return f"{row.action} by {row.actor} at {_when(row.at)}"


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _advice(last_good_at: datetime | None) -> str:
    if last_good_at is None:
        restore = (
            "Restore the database from the newest backup on which `ledgerlink audit verify` passes"
        )
    else:
        restore = (
            f"Restore the database from a backup taken before {_when(last_good_at)} (the time "
            "of the last good entry), or the newest backup on which `ledgerlink audit verify` "
            "passes"
        )
    return f"{restore}, and investigate who had write access to the database."
