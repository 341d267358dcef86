"""Signing in: password check with throttling, portal sessions and API token lookup.

Throttling slows guessing down without letting anyone lock an account: every wrong
password makes the next attempt *from the same client address* wait, the wait doubling
with each further failure up to ``login_lockout_minutes``. Two runs of failures are kept:

* per account and address (``login_max_failures`` free, then 1 s, 2 s, 4 s …): stops one
  client guessing one password;
* per address over all accounts (``login_failures_per_address`` free, then the same
  doubling):
  stops one client spraying many accounts.

There is deliberately no limit per account alone: then whoever guesses at the admin's
account could lock the admin out. The admin signing in from an address that has not been
failing is never refused, however many others are guessing. The client address is the
peer's, or the one a trusted proxy forwarded (``trusted_proxies``); a header from anyone
else changes nothing.

The state lives in the database (``login_throttles``) so that it holds across every web
process behind a load balancer; the rows of a key are locked while its attempt is checked,
so a burst of parallel guesses is counted one after another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ledgerlink.identity import passwords, tokens
from ledgerlink.identity.principal import Principal
from ledgerlink.identity.roles import Role
from ledgerlink.settings import Settings
from ledgerlink.store.models import ApiToken, LoginAttempt, LoginThrottle, User, UserSession
from ledgerlink.store.types import utcnow

#: The wait after the first failure beyond the free ones; it doubles with each further one.
FIRST_WAIT_SECONDS = 1
#: A run of failures is forgotten after this long without a failure.
FORGET_AFTER = timedelta(days=1)


class LoginRefused(Exception):
    """Sign-in refused; ``message`` is safe to show (it never says whether the e-mail exists)."""

    def __init__(self, message: str, *, throttled: bool = False, retry_after: int = 0):
        super().__init__(message)
        self.message = message
        self.throttled = throttled
        self.retry_after = retry_after


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the cookie, never stored
    principal: Principal


def authenticate(
    session: Session,
    settings: Settings,
    *,
    email: str,
    password: str,
    client_ip: str | None,
    now: datetime | None = None,
) -> NewSession:
    """Check the password (within the throttle) and open a portal session.

    Raises ``LoginRefused``. The failed attempt is added to ``session`` before raising:
    callers catch the refusal *inside* their transaction so that it is recorded.
    ``now`` is for tests that move the clock.
    """
    now = now or utcnow()
    address = email.strip().lower()
    throttle = _Throttle.of(settings, address, client_ip)
    throttle.refuse_if_waiting(session, now)

    user = session.scalar(select(User).where(User.email == address))
    ok = passwords.verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        session.add(LoginAttempt(email=address, client_ip=client_ip, succeeded=False, at=now))
        throttle.note_failure(session, now)
        raise LoginRefused("E-mail or password is wrong, or the account is disabled.")

    session.add(LoginAttempt(email=address, client_ip=client_ip, succeeded=True, at=now))
    throttle.note_success(session)
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    token = tokens.new_secret()
    session.add(
        UserSession(
            token_hash=tokens.digest(token),
            user_id=user.id,
            expires_at=utcnow() + timedelta(hours=settings.session_hours),
            client_ip=client_ip,
        )
    )
    _forget_old_attempts(session, now)
    return NewSession(token=token, principal=_principal(user, "session"))


def check_current_password(
    session: Session,
    settings: Settings,
    user: User,
    password: str,
    *,
    client_ip: str | None,
    now: datetime | None = None,
) -> bool:
    """Whether ``password`` is the signed-in ``user``'s own, asked before a change. It
    counts in the same throttle as signing in: a stolen session or API token must not
    become a way to guess the password at full speed. Raises ``LoginRefused`` while the
    client must wait; a wrong password is added to ``session`` (commit it)."""
    now = now or utcnow()
    throttle = _Throttle.of(settings, user.email, client_ip)
    throttle.refuse_if_waiting(session, now)
    if passwords.verify_password(user.password_hash, password):
        return True
    session.add(LoginAttempt(email=user.email, client_ip=client_ip, succeeded=False, at=now))
    throttle.note_failure(session, now)
    return False


def resolve_session(session: Session, token: str) -> Principal | None:
    row = session.get(UserSession, tokens.digest(token))
    if row is None or row.expires_at <= utcnow() or not row.user.is_active:
        return None
    return _principal(row.user, "session")


def end_session(session: Session, token: str) -> None:
    session.execute(delete(UserSession).where(UserSession.token_hash == tokens.digest(token)))


def resolve_api_token(session: Session, token: str) -> tuple[Principal | None, bool]:
    """The token's owner (None for an unknown, revoked or expired token), and whether its
    last use is stale enough to record with ``note_api_token_use``. Read-only."""
    row = _live_token(session, token)
    if row is None:
        return None, False
    return _principal(row.user, "token"), _use_is_stale(row.last_used_at)


def note_api_token_use(session: Session, token: str) -> None:
    """Record when a token was last used, at most once a minute per token: a busy
    integration must not turn every API call into a database write."""
    row = _live_token(session, token)
    if row and _use_is_stale(row.last_used_at):
        row.last_used_at = utcnow()


def _use_is_stale(last_used_at: datetime | None) -> bool:
    return last_used_at is None or utcnow() - last_used_at > timedelta(minutes=1)


def _live_token(session: Session, token: str) -> ApiToken | None:
    if not token.startswith(tokens.API_TOKEN_PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == tokens.digest(token)))
    if row is None or row.revoked_at is not None or not row.user.is_active:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return row


def _principal(user: User, via: str) -> Principal:
    return Principal(user_id=user.id, email=user.email, role=Role(user.role), via=via)


@dataclass(frozen=True)
class _Run:
    key: str
    free_failures: int
    refusal: str  # what the refused client is told, before "Try again in …"


@dataclass(frozen=True)
class _Throttle:
    """The two runs of failures an attempt counts against (see the module's docstring)."""

    account: _Run
    address: _Run
    longest_wait: int

    @classmethod
    def of(cls, settings: Settings, email: str, client_ip: str | None) -> _Throttle:
        peer = client_ip or "unknown"
        return cls(
            account=_Run(
                f"account:{peer}|{email}"[:400],
                settings.login_max_failures,
                "Too many failed sign-ins for this account from your address.",
            ),
            address=_Run(
                f"address:{peer}"[:400],
                settings.login_failures_per_address,
                "Too many failed sign-ins from your address.",
            ),
            longest_wait=settings.login_lockout_minutes * 60,
        )

    @property
    def runs(self) -> tuple[_Run, _Run]:
        return (self.account, self.address)  # keys in sorted order: rows lock in one order

    def refuse_if_waiting(self, session: Session, now: datetime) -> None:
        rows = {
            row.key: row
            for row in session.scalars(
                select(LoginThrottle)
                .where(LoginThrottle.key.in_([run.key for run in self.runs]))
                .order_by(LoginThrottle.key)
                .with_for_update()
            )
        }
        for run in self.runs:
            row = rows.get(run.key)
            if row is None or now - row.last_failure_at > FORGET_AFTER or row.retry_at <= now:
                continue
            seconds = max(1, math.ceil((row.retry_at - now).total_seconds()))
            raise LoginRefused(
                f"{run.refusal} Try again in {_in_words(seconds)}.",
                throttled=True,
                retry_after=seconds,
            )

    def note_failure(self, session: Session, now: datetime) -> None:
        for run in self.runs:
            _ensure_row(session, run.key, now)
            row = session.scalars(
                select(LoginThrottle)
                .where(LoginThrottle.key == run.key)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one()
            if now - row.last_failure_at > FORGET_AFTER:
                row.failures = 0
            row.failures += 1
            row.last_failure_at = now
            wait = _wait_seconds(row.failures, run.free_failures, self.longest_wait)
            row.retry_at = now + timedelta(seconds=wait)

    def note_success(self, session: Session) -> None:
        """The right password ends this client's run for the account. The address's run
        goes on: signing in to an account of one's own must not reset a spraying run."""
        session.execute(delete(LoginThrottle).where(LoginThrottle.key == self.account.key))


def _wait_seconds(failures: int, free: int, longest: int) -> int:
    if failures < free:
        return 0
    return int(min(FIRST_WAIT_SECONDS * 2 ** min(failures - free, 40), longest))


def _ensure_row(session: Session, key: str, now: datetime) -> None:
    """Insert the key's row unless it exists (a concurrent first failure may insert it
    at the same moment: neither fails)."""
    values = {"key": key, "failures": 0, "last_failure_at": now, "retry_at": now}
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(LoginThrottle).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(LoginThrottle).values(**values).on_conflict_do_nothing())


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


def _forget_old_attempts(session: Session, now: datetime) -> None:
    """Keep the attempts and throttle tables small: older runs no longer count."""
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - FORGET_AFTER))
    session.execute(delete(LoginThrottle).where(LoginThrottle.last_failure_at < now - FORGET_AFTER))
