"""Signed checkpoints of the audit chain, kept outside the database.

The hash chain alone proves only that the log is consistent with itself: someone who can
write to the database can truncate it, or edit an entry, and recompute every later hash
and the head. A checkpoint records "entry ``seq`` carried hash ``hash``" with an
HMAC-SHA256 under a key derived from the vault keys (``Vault.derive_secrets``), which
live outside the database. Whoever can write the database but cannot read the vault key
cannot make a checkpoint, and every truncation below a checkpoint or rewrite of an entry
at or before it changes the hash the checkpoint names, which ``store/audit_checks.py``
then reports.

Checkpoints are JSON lines appended to ``<var_dir>/audit-anchors/checkpoints.jsonl``
(directory 0700, file 0600, one ``flock``-ed append at a time). Each line also names the
SHA-256 of the line before it (``prev``), so the lines form a chain of their own: the
newest line, checked by its HMAC, vouches for every earlier one. That is what survives a
vault key rotation: ``ledgerlink vault rotate`` calls ``carry_over`` while the old key is
still configured, which re-signs the newest checkpoint under the new key; older lines
signed under the retired key stay verifiable through the ``prev`` links. Each line keeps
the id of the key that signed it (``kid``, a fingerprint, not the key).

What it does not cover: entries written after the newest checkpoint are protected only
by the plain chain until the next checkpoint (every successful check writes one), and
someone who can write ``var_dir`` and read the vault key can forge anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog

from ledgerlink.store.audit import GENESIS_HASH, canonical_json

if TYPE_CHECKING:
    from ledgerlink.settings import Settings
    from ledgerlink.vault import Vault

log = structlog.get_logger("ledgerlink.audit")

PURPOSE = "audit-anchor"
DIR_NAME = "audit-anchors"
FILE_NAME = "checkpoints.jsonl"
FORMAT = 1
_TAIL = 16384  # bytes read from the end to find the newest line (a line is ~400)
_KID_LABEL = b"ledgerlink audit anchor key id"
_HEX64 = frozenset("0123456789abcdef")

Reason = Literal["incremental", "full", "anchor", "rekey"]


class AnchorProblem(Exception):
    """The checkpoint file cannot be used; the message names the file and what to do."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One signed line: entry ``seq`` carried ``hash`` when the line was written ``at``."""

    seq: int
    hash: str
    at: datetime
    kid: str
    prev: str
    reason: str
    mac: str
    line: bytes = field(repr=False, compare=False)

    @property
    def digest(self) -> str:
        """What the next line names as its ``prev``."""
        return hashlib.sha256(self.line).hexdigest()


class AnchorKeys:
    """The HMAC keys: one derived from each vault key, the primary's signs."""

    def __init__(self, secrets: Sequence[bytes]):
        if not secrets:
            raise ValueError("AnchorKeys needs at least one secret")
        self._by_kid = {_kid(secret): secret for secret in secrets}
        self.signing_kid = _kid(secrets[0])

    @classmethod
    def from_vault(cls, vault: Vault) -> AnchorKeys:
        return cls(vault.derive_secrets(PURPOSE))

    def sign(self, payload: bytes) -> str:
        return hmac.new(self._by_kid[self.signing_kid], payload, hashlib.sha256).hexdigest()

    def check(self, checkpoint: Checkpoint) -> Literal["ok", "bad", "unknown-key"]:
        secret = self._by_kid.get(checkpoint.kid)
        if secret is None:
            return "unknown-key"
        expected = hmac.new(secret, _payload(checkpoint), hashlib.sha256).hexdigest()
        return "ok" if hmac.compare_digest(expected, checkpoint.mac) else "bad"


def _kid(secret: bytes) -> str:
    return hmac.new(secret, _KID_LABEL, hashlib.sha256).hexdigest()[:16]


def _fields(
    *, seq: int, digest: str, at: datetime, kid: str, prev: str, reason: str
) -> dict[str, Any]:
    return {
        "v": FORMAT,
        "seq": seq,
        "hash": digest,
        "at": at,
        "kid": kid,
        "prev": prev,
        "reason": reason,
    }


def _payload(checkpoint: Checkpoint) -> bytes:
    return canonical_json(
        _fields(
            seq=checkpoint.seq,
            digest=checkpoint.hash,
            at=checkpoint.at,
            kid=checkpoint.kid,
            prev=checkpoint.prev,
            reason=checkpoint.reason,
        )
    )


def anchor_path(settings: Settings) -> Path:
    return settings.var_dir / DIR_NAME / FILE_NAME


class AnchorFile:
    """The append-only file of checkpoints."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def for_settings(cls, settings: Settings) -> AnchorFile:
        return cls(anchor_path(settings))

    # ---- reading ------------------------------------------------------------------------

    def newest(self) -> Checkpoint | None:
        """The last complete line, reading only the end of the file; None when there is no
        checkpoint yet."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            size = self._check_mode(fd)
            start = max(0, size - _TAIL)
            tail = os.pread(fd, size - start, start)
        finally:
            os.close(fd)
        lines = _complete_lines(tail, whole=start == 0)
        if not lines:
            return None
        return self._parse(lines[-1], "the newest line")

    def read_all(self) -> list[Checkpoint]:
        """Every complete line, oldest first."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        try:
            self._check_mode(fd)
            with os.fdopen(os.dup(fd), "rb") as handle:
                content = handle.read()
        finally:
            os.close(fd)
        return [
            self._parse(line, f"line {number}")
            for number, line in enumerate(_complete_lines(content, whole=True), start=1)
        ]

    # ---- writing ------------------------------------------------------------------------

    def extend(
        self, keys: AnchorKeys, *, seq: int, digest: str, reason: Reason, now: datetime
    ) -> Checkpoint | None:
        """Append a checkpoint for entry ``seq`` unless the newest one already reaches as
        far (another process anchored meanwhile). Call it only for a verified entry."""
        with self._locked() as (fd, newest):
            if newest is not None and newest.seq >= seq:
                return None
            return self._append(fd, keys, newest, seq=seq, digest=digest, reason=reason, now=now)

    def rekey(self, keys: AnchorKeys, *, now: datetime) -> Checkpoint | None:
        """Re-sign the newest checkpoint under the signing key (after checking it under the
        key that made it); None when there is nothing to carry over."""
        with self._locked() as (fd, newest):
            if newest is None or newest.kid == keys.signing_kid:
                return None
            state = keys.check(newest)
            if state != "ok":
                raise AnchorProblem(
                    f"the newest audit checkpoint in {self.path} "
                    + (
                        "has an invalid signature"
                        if state == "bad"
                        else "was signed with a key the vault no longer has"
                    )
                    + ", so it was not carried over to the new vault key; run `ledgerlink "
                    "audit verify` to see what is wrong"
                )
            return self._append(
                fd, keys, newest, seq=newest.seq, digest=newest.hash, reason="rekey", now=now
            )

    def _append(
        self,
        fd: int,
        keys: AnchorKeys,
        newest: Checkpoint | None,
        *,
        seq: int,
        digest: str,
        reason: str,
        now: datetime,
    ) -> Checkpoint:
        unsigned = Checkpoint(
            seq=seq,
            hash=digest,
            at=now.astimezone(UTC),
            kid=keys.signing_kid,
            prev=GENESIS_HASH if newest is None else newest.digest,
            reason=reason,
            mac="",
            line=b"",
        )
        mac = keys.sign(_payload(unsigned))
        record = _fields(
            seq=seq,
            digest=digest,
            at=unsigned.at,
            kid=unsigned.kid,
            prev=unsigned.prev,
            reason=reason,
        )
        line = canonical_json({**record, "mac": mac})
        os.write(fd, line + b"\n")
        os.fsync(fd)
        log.info("audit.checkpoint_written", seq=seq, reason=reason, file=str(self.path))
        return Checkpoint(
            seq=seq,
            hash=digest,
            at=unsigned.at,
            kid=unsigned.kid,
            prev=unsigned.prev,
            reason=reason,
            mac=mac,
            line=line,
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[tuple[int, Checkpoint | None]]:
        """The file open for appending under an exclusive lock, with its newest line; a
        half-written last line (a crash mid-append) is cut off first."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = self._check_mode(fd)
            start = max(0, size - _TAIL)
            tail = os.pread(fd, size - start, start)
            if tail and not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                keep = start + cut + 1 if cut >= 0 else start
                log.warning("audit.checkpoint_partial_line_dropped", file=str(self.path))
                os.ftruncate(fd, keep)
                tail = tail[: keep - start]
            lines = _complete_lines(tail, whole=start == 0)
            newest = self._parse(lines[-1], "the newest line") if lines else None
            yield fd, newest
        finally:
            os.close(fd)  # releases the lock
        if created:
            _fsync_dir(self.path.parent)

    # ---- helpers ------------------------------------------------------------------------

    def _check_mode(self, fd: int) -> int:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AnchorProblem(f"the audit checkpoint file {self.path} is not a regular file")
        if info.st_mode & 0o022:
            raise AnchorProblem(
                f"the audit checkpoint file {self.path} is writable by other users (mode "
                f"{stat.S_IMODE(info.st_mode):o}); run `chmod 600 {self.path}` and then "
                "`ledgerlink audit verify`"
            )
        return info.st_size

    def _parse(self, line: bytes, where: str) -> Checkpoint:
        try:
            data = json.loads(line)
            checkpoint = Checkpoint(
                seq=_int(data["seq"]),
                hash=_hex64(data["hash"]),
                at=datetime.strptime(data["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
                kid=str(data["kid"]),
                prev=_hex64(data["prev"]),
                reason=str(data["reason"]),
                mac=str(data["mac"]),
                line=line,
            )
            if data.get("v") != FORMAT:
                raise ValueError("unknown format")
        except (ValueError, KeyError, TypeError):
            raise AnchorProblem(
                f"{where} of the audit checkpoint file {self.path} is not a checkpoint: the "
                "file was damaged or edited. Restore it from backup, then run `ledgerlink "
                "audit verify`"
            ) from None
        return checkpoint


def check_lines(lines: Sequence[Checkpoint], keys: AnchorKeys, path: Path) -> str | None:
    """What is wrong with the checkpoint file as a whole, or None: every line must follow
    the one before it, every line signed with a key we have must carry a valid HMAC, and
    the newest must be signed with one we have (it vouches for the older ones)."""
    prev = GENESIS_HASH
    for number, line in enumerate(lines, start=1):
        if line.prev != prev:
            return (
                f"Audit checkpoints tampered with: line {number} of {path} does not follow "
                "the line before it, so checkpoints were removed, changed or reordered. "
                "Restore the file from backup and investigate who could write it."
            )
        state = keys.check(line)
        if state == "bad":
            return _bad_signature(path, f"line {number}")
        prev = line.digest
    if lines:
        return check_newest(lines[-1], keys, path)
    return None


def check_newest(newest: Checkpoint | None, keys: AnchorKeys, path: Path) -> str | None:
    """What is wrong with the newest checkpoint's signature, or None."""
    if newest is None:
        return None
    state = keys.check(newest)
    if state == "bad":
        return _bad_signature(path, "the newest line")
    if state == "unknown-key":
        return (
            f"The newest audit checkpoint in {path} (entry {newest.seq}, key id "
            f"{newest.kid}) was signed with a vault key ledgerlink no longer has, so the "
            "chain cannot be checked against it. Put the old key back after the current one "
            "(LEDGERLINK_VAULT_KEYS or the key file) and run `ledgerlink vault rotate`, which "
            "carries the checkpoints over to the new key."
        )
    return None


def _bad_signature(path: Path, where: str) -> str:
    return (
        f"Audit checkpoints tampered with: {where} of {path} has an invalid signature, so it "
        "was edited or forged by someone without the vault key. Restore the file from "
        "backup, run `ledgerlink audit verify`, and investigate who could write it."
    )


def carry_over(settings: Settings, vault: Vault, *, now: datetime | None = None) -> None:
    """Called by ``vault.rotate`` while both the new and the old keys are configured:
    re-sign the newest checkpoint under the new primary key."""
    anchors = AnchorFile.for_settings(settings)
    if not anchors.path.exists():
        return
    done = anchors.rekey(AnchorKeys.from_vault(vault), now=now or datetime.now(UTC))
    if done is not None:
        log.info("audit.checkpoints_carried_over", seq=done.seq, kid=done.kid)


def _complete_lines(content: bytes, *, whole: bool) -> list[bytes]:
    parts = content.split(b"\n")
    parts.pop()  # after the last newline: empty, or a half-written line
    if not whole and parts:
        parts.pop(0)  # the tail started inside a line
    return [part for part in parts if part.strip()]


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("not a sequence number")
    return value


def _hex64(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX64:
        raise ValueError("not a hash")
    return value


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def digest_lines(settings: Settings) -> list[str]:
    """The newest signed checkpoint, for the daily digest: a copy of the anchor kept in
    people's mailboxes, outside this machine, that ``--expect-head`` can check against."""
    try:
        newest = AnchorFile.for_settings(settings).newest()
    except (OSError, AnchorProblem) as exc:
        log.warning("audit.digest_anchor_unavailable", error=str(exc))
        return []
    if newest is None:
        return []
    return [
        "",
        "Audit log anchor (keep this e-mail: it shows the audit log as it was today):",
        f"  entry {newest.seq}, hash {newest.hash}",
        f"  signed checkpoint of {newest.at:%Y-%m-%d %H:%M} UTC, key {newest.kid}, "
        f"signature {newest.mac}",
        f"  `ledgerlink audit verify --expect-head {newest.hash}` checks the log against it.",
    ]
