"""The tables of the platform: people and their credentials, connections and their
encrypted secrets, jobs, and the audit chain.

Capabilities built on top (members, payments, sync) add their own modules of models;
they all share ``Base`` so that one Alembic history covers the whole store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ledgerlink.store.types import JSONDocument, UTCDateTime, utcnow

# Deterministic constraint names keep migrations identical on every back-end.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Auto-incrementing integer primary key that is BIGINT on PostgreSQL and the rowid on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserSession(Base):
    """A portal login. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "user_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    client_ip: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship(lazy="joined")


class ApiToken(Base):
    """A REST API credential. Shown once on creation; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class LoginAttempt(Base):
    """Failed and successful logins, kept in the database so that throttling holds across
    every web process behind a load balancer."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_email_at", "email", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    succeeded: Mapped[bool] = mapped_column(Boolean)


class LoginThrottle(Base):
    """A run of failed sign-ins for one key (an address, or an account from an address) and
    when the next attempt for it is accepted; see identity/login.py."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retry_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Connection(Base):
    """A configured external system (SBC, PayTrace, Sage 500). Non-secret settings are
    plain JSON; secrets live in ``connection_secrets``, encrypted by the vault."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    #: not_connected | connected | needs_reauthorisation: set by connectors, shown in the
    #: portal with ``auth_detail`` saying what to do.
    auth_status: Mapped[str] = mapped_column(String(32), default="not_connected")
    auth_detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    secrets: Mapped[list[ConnectionSecret]] = relationship(
        back_populates="connection", cascade="all, delete-orphan", lazy="selectin"
    )


class ConnectionSecret(Base):
    __tablename__ = "connection_secrets"
    __table_args__ = (UniqueConstraint("connection_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    connection: Mapped[Connection] = relationship(back_populates="secrets")


class Job(Base):
    """A unit of background work for the embedded runner (SQLite).

    On PostgreSQL procrastinate keeps its own tables; this one is unused there.
    ``dedup_key`` is unique among jobs still waiting or running, so enqueueing the same
    logical work twice yields one job.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_due", "status", "run_at"),
        Index(
            "uq_jobs_dedup_key_pending",
            "dedup_key",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task: Mapped[str] = mapped_column(String(128))
    args: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    queue: Mapped[str] = mapped_column(String(64), default="default")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    dedup_key: Mapped[str | None] = mapped_column(String(200))
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    #: Runs whose runner died under them; a resumable job's do not count as attempts.
    stalls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_by: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PeriodicTick(Base):
    """One row per (schedule, due time) already enqueued, so that many embedded runners
    enqueue each periodic run exactly once."""

    __tablename__ = "periodic_ticks"

    schedule: Mapped[str] = mapped_column(String(128), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)


class WorkerHeartbeat(Base):
    """Embedded runners announce themselves here; ``/readyz`` reads it."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobError(Base):
    """The latest error of a procrastinate job (PostgreSQL).

    procrastinate records a job's state but not why it failed; finance needs the reason
    next to the failed job. The embedded runner keeps it in ``jobs.last_error``.
    ``job_id`` is ``procrastinate_jobs.id``; rows go when the job is pruned.
    """

    __tablename__ = "job_errors"

    job_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    task: Mapped[str] = mapped_column(String(128))
    attempt: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Runs its worker did not live through (SIGKILL, OOM): a resumable job's are not
    #: attempts, so they are counted here against MAX_STALLS.
    stalls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AuditEntry(Base):
    """One link of the append-only audit chain (see ``store/audit.py``)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(100), index=True)
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(100))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The single row naming the chain's last entry. Appenders lock it, which serialises
    them on every back-end and lets ``audit verify`` notice a truncated tail."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigId)
    hash: Mapped[str] = mapped_column(String(64))


from ledgerlink.store import audit_models as _audit_models  # noqa: E402,F401  (registers the audit check table)
from ledgerlink.store import invoice_request_models as _invoice_request_models  # noqa: E402,F401  (registers the invoice payment requests)
from ledgerlink.store import level_three_models as _level_three_models  # noqa: E402,F401  (registers the Level 3 outcomes)
from ledgerlink.store import mapping_models as _mapping_models  # noqa: E402,F401  (registers mapping tables)
from ledgerlink.store import member_models as _member_models  # noqa: E402,F401  (registers member tables)
from ledgerlink.store import payment_models as _payment_models  # noqa: E402,F401  (registers payment tables)
from ledgerlink.store import realtime_inbound_models as _realtime_inbound_models  # noqa: E402,F401  (registers the poll state of real-time reads)
from ledgerlink.store import realtime_models as _realtime_models  # noqa: E402,F401  (registers the real-time tables)
from ledgerlink.store import recon_models as _recon_models  # noqa: E402,F401  (registers reconciliation tables)
from ledgerlink.store import recon_rule_models as _recon_rule_models  # noqa: E402,F401  (registers the rule spec versions)
from ledgerlink.store import signed_link_models as _signed_link_models  # noqa: E402,F401  (registers the uses of one-use signed links)
from ledgerlink.store import sync_models as _sync_models  # noqa: E402,F401  (registers sync tables)
from ledgerlink.store import tour_models as _tour_models  # noqa: E402,F401  (registers the guided tour's tables)
