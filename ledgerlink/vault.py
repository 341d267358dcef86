"""Credential encryption: the only place connection secrets are encrypted or decrypted.

Secrets are Fernet tokens (AES-128-CBC + HMAC-SHA256) under a list of keys, newest
first: the first key encrypts, every key may decrypt (``MultiFernet``). Keeping older
keys able to decrypt is what lets a key be rotated without a flag day; retiring them
once nothing uses them is what makes rotation worth doing.

The keys live outside the database, so a stolen database dump alone reveals nothing:

* ``LEDGERLINK_VAULT_KEYS`` (comma-separated, newest first) for deployments that inject
  secrets through the environment, or
* a key file (default ``<var_dir>/vault.key``, one key per line, newest first), created
  with mode 0600 on first use. A file other users can read is refused rather than used,
  because it would quietly defeat the point of encrypting.

Processes that loaded their keys from the file notice when ``ledgerlink vault rotate``
replaces it (one ``stat`` per operation) and pick up the new keys, so a running server
neither keeps encrypting under a key that is about to be retired nor fails to decrypt
what the rotation re-encrypted.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from ledgerlink.settings import Settings
from ledgerlink.store import audit, audit_anchors
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection, ConnectionSecret

log = structlog.get_logger("ledgerlink.vault")

#: What a stored secret looks like wherever it is shown: set or not, never any character.
MASK = audit.REDACTED

ENV_VAR = "LEDGERLINK_VAULT_KEYS"

MISSING_KEY_MESSAGE = (
    "the vault key that encrypted this secret is missing; restore the old key to "
    "LEDGERLINK_VAULT_KEYS or the key file, or re-enter the secret"
)

_NEW_KEY_HINT = "generate one with `ledgerlink vault new-key`"


class VaultError(Exception):
    """The vault cannot do what was asked; the message says why and what to do.

    Messages never contain key material or secret values.
    """


def new_key() -> str:
    """A fresh random Fernet key (44 characters of URL-safe base64)."""
    return Fernet.generate_key().decode("ascii")


def mask(secret: str | None) -> str:
    """How a stored secret is shown: ``MASK`` when set, ``""`` when not.

    The mask has a fixed length and contains no character of the secret, so not even
    its length or last digits leak into pages, exports or the audit chain.
    """
    return MASK if secret else ""


class Vault:
    """Encrypts and decrypts secrets under a list of Fernet keys, the first being primary.

    Build it with ``load_vault(settings)`` in the product; the constructor is for tests
    and for rotation, which need vaults over explicit key lists. When ``key_file`` is
    given, the vault re-reads that file whenever it changes on disk.
    """

    def __init__(self, keys: Sequence[str | bytes], *, key_file: Path | None = None):
        self._lock = threading.Lock()
        self._key_file = key_file
        # No stamp yet: the first operation re-reads the file, so a rotation that replaced
        # it between our caller reading it and now cannot leave us on stale keys.
        self._stamp: tuple[int, int, int, int] | None = None
        self._ring = _Keyring.of(keys, source="the key list")

    def __repr__(self) -> str:  # never show keys
        source = f", from {self._key_file}" if self._key_file else ""
        return f"<Vault {len(self._ring.keys)} key(s){source}>"

    @property
    def key_count(self) -> int:
        return len(self._current().keys)

    def encrypt(self, plaintext: str) -> str:
        """Encrypt under the primary key; the token is ASCII and safe to store as text."""
        return self._current().multi.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt with whichever configured key encrypted ``token``.

        Raises ``VaultError`` when none can: the key that encrypted it has been removed
        (or the stored token was damaged), and only the operator can fix that.
        """
        ring = self._current()
        try:
            return ring.multi.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise VaultError(MISSING_KEY_MESSAGE) from None

    def can_decrypt(self, token: str) -> bool:
        try:
            self.decrypt(token)
        except VaultError:
            return False
        return True

    def rotate_token(self, token: str) -> str:
        """Re-encrypt ``token`` under the primary key (decrypting with any key)."""
        ring = self._current()
        try:
            return ring.multi.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise VaultError(MISSING_KEY_MESSAGE) from None

    def derive_secret(self, purpose: str, length: int = 32) -> bytes:
        """A secret for another purpose (e.g. signing CSRF tokens) derived from the primary
        key with HKDF, so the product needs one secret to protect, not several.

        Derived secrets change when the primary key is rotated; use them only for things
        that may be invalidated by a rotation (short-lived tokens), never to encrypt data.
        """
        if not purpose:
            raise ValueError("derive_secret needs a purpose, e.g. 'csrf'")
        material = base64.urlsafe_b64decode(self._current().keys[0])
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=length,
            salt=None,
            info=b"ledgerlink/" + purpose.encode("utf-8"),
        )
        return hkdf.derive(material)

    def derive_secrets(self, purpose: str, length: int = 32) -> list[bytes]:
        """``derive_secret`` under every configured key, the primary first: for checking
        what was signed before a rotation while the old key is still configured."""
        return [Vault([key]).derive_secret(purpose, length) for key in self._current().keys]

    # ---- internals ----------------------------------------------------------------------

    @property
    def primary_key(self) -> str:
        """The key new secrets are encrypted under (for rotation; never log it)."""
        return self._current().keys[0]

    def _current(self) -> _Keyring:
        """The keys to use now, re-read first if a rotation replaced the key file."""
        if self._key_file is None:
            return self._ring
        try:
            current = _stamp_of(self._key_file)
        except FileNotFoundError:
            raise VaultError(
                f"the vault key file {self._key_file} has disappeared; restore it from "
                "backup before ledgerlink encrypts or decrypts any more secrets"
            ) from None
        if current == self._stamp:
            return self._ring
        with self._lock:
            if current != self._stamp:
                keys = _read_key_file(self._key_file)
                self._ring = _Keyring.of(keys, source=str(self._key_file))
                if self._stamp is not None:
                    log.info("vault.keys_reloaded", key_file=str(self._key_file), keys=len(keys))
                self._stamp = current
            return self._ring


@dataclass(frozen=True, slots=True)
class _Keyring:
    """Keys and the MultiFernet over them, swapped as one value so a reload in one thread
    never shows another thread a mix of old and new."""

    keys: tuple[str, ...]
    multi: MultiFernet

    @classmethod
    def of(cls, keys: Sequence[str | bytes], *, source: str) -> _Keyring:
        if not keys:
            raise VaultError(f"no vault keys in {source}; {_NEW_KEY_HINT}")
        texts: list[str] = []
        fernets: list[Fernet] = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise VaultError(
                    f"the vault key at position {position} of {source} is not a valid Fernet "
                    f"key; {_NEW_KEY_HINT}"
                ) from None
            texts.append(key.decode("ascii") if isinstance(key, bytes) else key)
        return cls(tuple(texts), MultiFernet(fernets))


def load_vault(settings: Settings) -> Vault:
    """The vault for these settings: keys from ``LEDGERLINK_VAULT_KEYS`` when set (and not
    empty), otherwise from the key file, which is created with a new key on first use."""
    env_keys = _env_keys(settings)
    if env_keys is not None:
        return Vault(env_keys)
    path = settings.resolved_vault_key_file
    keys = _load_or_create_key_file(path)
    return Vault(keys, key_file=path)


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What ``rotate`` did.

    ``next_step`` is ``None`` when nothing is left for the operator to do; otherwise it
    is an instruction to show them (the env-var case, where we cannot edit their config).
    """

    re_encrypted: int
    key_source: str
    retired_keys: int = 0
    next_step: str | None = None

    def __str__(self) -> str:
        done = f"Re-encrypted {self.re_encrypted} secret(s); keys from {self.key_source}."
        if self.retired_keys:
            done += f" Retired {self.retired_keys} old key(s)."
        return f"{done} {self.next_step}" if self.next_step else done


def rotate(settings: Settings, db: Database, *, actor: str = "system:ledgerlink") -> RotationReport:
    """Re-encrypt every stored secret under a new primary key and retire the old keys.

    **Key file** (the default). Three steps, each safe to be interrupted after:

    1. Write the file as ``[new, *old]`` (temp file in the same directory, mode 0600,
       fsync, ``os.replace``, fsync the directory). A crash before the replace leaves the
       old file; after it, the old keys are all still there. Every secret decrypts.
    2. Re-encrypt every ``connection_secrets.ciphertext`` under the new key in one
       database transaction (committed with a full fsync, even on SQLite with
       ``synchronous=NORMAL``, because step 3 must never outlive a lost commit). It
       commits entirely or not at all, and the file holds both the new and old keys, so
       every secret decrypts whichever way it ends.
    3. Only after that commit is durable, rewrite the file as ``[new]``. Nothing uses the
       old keys any more, so dropping them cannot strand a secret.

    Re-running after a crash is always safe: it simply starts another rotation.

    Servers already running pick the new file up on their next vault operation. A secret
    encrypted by one of them under the old key *while* step 2 ran is caught by a second
    pass ("sweep") before step 3; only a writer that encrypted before step 1 and commits
    after the sweep could escape it, which needs a transaction held open across the
    whole rotation. ``decrypt`` then names the fix: re-enter that secret.

    **LEDGERLINK_VAULT_KEYS**. We cannot edit the environment, so the operator has
    already put a new key first (``ledgerlink vault new-key``); this re-encrypts
    everything under that first key and reports that the other keys must now be removed
    from the variable wherever ledgerlink runs.

    A secret no configured key can decrypt aborts the rotation with nothing re-encrypted
    and the old keys kept, naming the connection and secret to fix.
    """
    env_keys = _env_keys(settings)
    if env_keys is not None:
        vault = Vault(env_keys)
        count = _reencrypt_everything(db, vault, actor=actor, key_source=ENV_VAR)
        _carry_audit_anchors(settings, vault)
        others = len(env_keys) - 1
        if others:
            step = (
                f"Every secret is now encrypted with the first key in {ENV_VAR}. Remove the "
                f"other {others} key(s) from {ENV_VAR} wherever ledgerlink runs (web and "
                "workers) and restart them; nothing needs the old keys any more."
            )
        else:
            step = (
                f"{ENV_VAR} holds a single key, so no old key was retired. To rotate, put a "
                "new key first (`ledgerlink vault new-key`), restart ledgerlink everywhere, "
                "and run this again."
            )
        return RotationReport(count, ENV_VAR, retired_keys=0, next_step=step)

    path = settings.resolved_vault_key_file
    with _rotation_lock(path):
        old_keys = _load_or_create_key_file(path)
        fresh = new_key()
        try:
            _write_key_file(path, [fresh, *old_keys])  # step 1
        except OSError as exc:
            raise VaultError(
                f"cannot write the vault key file {path} ({exc.strerror}); nothing was "
                "changed. Make the file and its directory writable by the user running "
                "ledgerlink, or use LEDGERLINK_VAULT_KEYS"
            ) from None
        log.info("vault.rotation_started", key_file=str(path), old_keys=len(old_keys))
        count = _reencrypt_everything(  # step 2 (+ sweep)
            db, Vault([fresh, *old_keys]), actor=actor, key_source=f"key file {path}"
        )
        _carry_audit_anchors(settings, Vault([fresh, *old_keys]))  # while both keys exist
        try:
            _write_key_file(path, [fresh])  # step 3
        except OSError as exc:
            raise VaultError(
                f"every secret was re-encrypted under the new key, but the old keys could not "
                f"be removed from {path} ({exc.strerror}). Nothing is at risk: the file still "
                "holds the new key first; run `ledgerlink vault rotate` again once it is "
                "writable"
            ) from None
    log.info("vault.rotated", key_file=str(path), re_encrypted=count, retired=len(old_keys))
    return RotationReport(count, f"key file {path}", retired_keys=len(old_keys))


def _carry_audit_anchors(settings: Settings, vault: Vault) -> None:
    """Re-sign the newest audit checkpoint under the new primary key while the old key can
    still check it, so the checkpoints keep verifying once the old key is retired."""

    try:
        audit_anchors.carry_over(settings, vault)
    except (OSError, audit_anchors.AnchorProblem) as exc:
        log.error("vault.audit_anchors_not_carried", error=str(exc))


# ---- re-encryption ----------------------------------------------------------------------


def _reencrypt_everything(db: Database, vault: Vault, *, actor: str, key_source: str) -> int:
    """Re-encrypt every secret under ``vault``'s primary key in one transaction, then sweep
    up any written concurrently under an older key. Returns how many were rewritten."""
    primary_only = Vault([vault.primary_key])
    with _durable_transaction(db) as session:
        count = _reencrypt(session, vault, only_if=None)
        audit.record(
            session,
            actor=actor,
            action="vault.rotated",
            entity_type="vault",
            entity_id=None,
            after={"re_encrypted": count, "key_source": key_source},
        )
    with _durable_transaction(db) as session:
        swept = _reencrypt(
            session, vault, only_if=lambda token: not primary_only.can_decrypt(token)
        )
    if swept:
        log.warning("vault.rotation_swept", re_encrypted=swept)
    return count + swept


def _reencrypt(session: Session, vault: Vault, *, only_if: Callable[[str], bool] | None) -> int:
    if session.get_bind().dialect.name == "postgresql":
        # Hold off concurrent secret writes (reads go on) so none slips in under an old key.
        session.execute(text("LOCK TABLE connection_secrets IN SHARE ROW EXCLUSIVE MODE"))
    rows = session.execute(
        select(
            ConnectionSecret.id,
            ConnectionSecret.name,
            ConnectionSecret.ciphertext,
            Connection.name.label("connection_name"),
        )
        .join(Connection, Connection.id == ConnectionSecret.connection_id)
        .order_by(ConnectionSecret.id)
    ).all()
    count = 0
    for row in rows:
        if only_if is not None and not only_if(row.ciphertext):
            continue
        try:
            token = vault.rotate_token(row.ciphertext)
        except VaultError:
            raise VaultError(
                f"secret {row.name!r} of connection {row.connection_name!r} cannot be "
                "decrypted with any configured vault key, so the rotation stopped and "
                "changed nothing (the old keys are kept). Restore the key that encrypted it "
                f"to {ENV_VAR} or the key file, or re-enter that secret, then rotate again."
            ) from None
        session.execute(
            update(ConnectionSecret)
            .where(ConnectionSecret.id == row.id)
            # Keep updated_at: it tells people when the secret was entered, and rotation
            # does not change the secret.
            .values(ciphertext=token, updated_at=ConnectionSecret.updated_at)
            .execution_options(synchronize_session=False)
        )
        count += 1
    return count


@contextlib.contextmanager
def _durable_transaction(db: Database) -> Iterator[Session]:
    """A write transaction whose commit is on disk when it returns.

    PostgreSQL commits durably already. SQLite runs with ``synchronous=NORMAL`` in WAL
    mode, where a power cut can undo the last commits; before we delete the old keys
    that would leave secrets encrypted under a key that no longer exists, so this one
    connection commits with ``synchronous=FULL`` (syncing the WAL, and with it every
    earlier commit).
    """
    if not db.is_sqlite:
        with db.transaction() as session:
            yield session
        return
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        previous = raw.execute("PRAGMA synchronous").fetchone()[0]
        raw.execute("PRAGMA synchronous=FULL")
        try:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with Session(bind=conn, expire_on_commit=False) as session:
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
        finally:
            with contextlib.suppress(Exception):
                raw.execute(f"PRAGMA synchronous={int(previous)}")


# ---- keys from the environment ----------------------------------------------------------


def _env_keys(settings: Settings) -> list[str] | None:
    """Keys from ``LEDGERLINK_VAULT_KEYS``, or ``None`` when it is unset or empty (an empty
    variable is how compose files and templates spell "not set")."""
    if settings.vault_keys is None:
        return None
    raw = settings.vault_keys.get_secret_value()
    if not raw.strip():
        return None
    keys = [part.strip() for part in raw.split(",")]
    for position, key in enumerate(keys, start=1):
        if not key:
            raise VaultError(
                f"{ENV_VAR}: the key at position {position} is empty (a stray comma?); list "
                "Fernet keys separated by commas, newest first"
            )
        if not _valid_key(key):
            raise VaultError(
                f"{ENV_VAR}: the key at position {position} (counting from 1, newest first) "
                "is not a valid Fernet key; a key is 44 characters of URL-safe base64 — "
                f"{_NEW_KEY_HINT}"
            )
    return keys


# ---- the key file -----------------------------------------------------------------------


def _load_or_create_key_file(path: Path) -> list[str]:
    try:
        try:
            return _read_key_file(path)
        except FileNotFoundError:
            pass
        _create_key_file(path)
        return _read_key_file(path)
    except OSError as exc:
        raise VaultError(
            f"cannot read or create the vault key file {path}: {exc.strerror}; check that the "
            "file and its directory belong to the user ledgerlink runs as, or set "
            "LEDGERLINK_VAULT_KEY_FILE to a writable location"
        ) from None


def _create_key_file(path: Path) -> None:
    """Create the key file with one new key, mode 0600 from the first byte.

    The key is written to a temp file created with ``O_CREAT | O_EXCL`` and mode 0600,
    fsynced, then hard-linked into place: ``link`` fails if the name exists, so two
    processes starting together never overwrite each other's key, and nobody can ever
    see the file empty or half-written (as they could with ``O_EXCL`` on the final name).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, (new_key() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            return  # another process created it first; use theirs
        _fsync_dir(path.parent)
        log.warning(
            "vault.key_file_created",
            key_file=str(path),
            hint="back this file up: without it the stored credentials cannot be decrypted",
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _read_key_file(path: Path) -> list[str]:
    """Keys from the file, newest first; refuses a file other users could read."""
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise VaultError(f"the vault key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise VaultError(
                f"the vault key file {path} is accessible to other users "
                f"(mode {stat.S_IMODE(info.st_mode):o}); ledgerlink will not use it. Run "
                f"`chmod 600 {path}` and consider rotating the key (`ledgerlink vault rotate`) "
                "if anyone else may have read it"
            )
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        content = b"".join(chunks).decode("ascii")
    except UnicodeDecodeError:
        raise VaultError(
            f"the vault key file {path} is not a key file (it contains non-ASCII bytes); "
            "restore it from backup"
        ) from None
    keys: list[str] = []
    for number, line in enumerate(content.splitlines(), start=1):
        key = line.strip()
        if not key:
            continue
        if not _valid_key(key):
            raise VaultError(
                f"the vault key file {path}: line {number} is not a valid Fernet key; each "
                "line holds one key (44 characters of URL-safe base64), newest first. Restore "
                "the file from backup"
            )
        keys.append(key)
    if not keys:
        raise VaultError(
            f"the vault key file {path} holds no keys; restore it from backup (if no secrets "
            "were ever stored, delete it and ledgerlink will create a new one)"
        )
    return keys


def _write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Replace the key file atomically and durably: readers see the old or the new file,
    never a mix, and after a crash the file on disk is one of the two."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write("".join(f"{key}\n" for key in keys))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def _rotation_lock(path: Path) -> Iterator[None]:
    """One rotation at a time per key file: two interleaved rotations could each retire
    the key the other just re-encrypted under."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_path = path.with_name(f".{path.name}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise VaultError(
                    f"another `ledgerlink vault rotate` is running on {path}; wait for it to finish"
                ) from None
            raise
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stamp_of(path: Path) -> tuple[int, int, int, int]:
    info = os.stat(path)
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


def _valid_key(key: str) -> bool:
    try:
        Fernet(key)
    except (ValueError, TypeError):
        return False
    return True
