"""Signing in: password check with throttling, portal sessions and API token lookup.

Throttling state lives in the database (``login_attempts``) so that it holds across every
web process behind a load balancer. Two limits apply: failures per account (stops
guessing one password) and failures per client address (stops spraying many accounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ledgerlink.identity import passwords, tokens
from ledgerlink.identity.principal import Principal
from ledgerlink.identity.roles import Role
from ledgerlink.settings import Settings
from ledgerlink.store.models import ApiToken, LoginAttempt, User, UserSession
from ledgerlink.store.types import utcnow

#: A client address may fail this many times (over all accounts) per lockout window.
FAILURES_PER_ADDRESS = 30


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
    session: Session, settings: Settings, *, email: str, password: str, client_ip: str | None
) -> NewSession:
    """Check the password (within the throttle) and open a portal session.

    Raises ``LoginRefused``. The failed attempt is added to ``session`` before raising:
    callers catch the refusal *inside* their transaction so that it is recorded.
    """
    address = email.strip().lower()
    window_start = utcnow() - timedelta(minutes=settings.login_lockout_minutes)
    _refuse_if_throttled(session, settings, address, client_ip, window_start)

    user = session.scalar(select(User).where(User.email == address))
    ok = passwords.verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        session.add(LoginAttempt(email=address, client_ip=client_ip, succeeded=False))
        raise LoginRefused("E-mail or password is wrong, or the account is disabled.")

    session.add(LoginAttempt(email=address, client_ip=client_ip, succeeded=True))
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
    _forget_old_attempts(session)
    return NewSession(token=token, principal=_principal(user, "session"))


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


def _refuse_if_throttled(
    session: Session, settings: Settings, address: str, client_ip: str | None, since: datetime
) -> None:
    minutes = settings.login_lockout_minutes
    last_success = session.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.email == address, LoginAttempt.succeeded.is_(True)
        )
    )
    account_since = max(since, last_success) if last_success else since
    account_failures = _count_failures(session, LoginAttempt.email == address, account_since)
    if account_failures >= settings.login_max_failures:
        raise LoginRefused(
            f"Too many failed sign-ins for this account. Try again in {minutes} minutes, "
            "or ask an administrator to reset the password.",
            throttled=True,
            retry_after=minutes * 60,
        )
    if (
        client_ip
        and _count_failures(session, LoginAttempt.client_ip == client_ip, since)
        >= FAILURES_PER_ADDRESS
    ):
        raise LoginRefused(
            f"Too many failed sign-ins from this address. Try again in {minutes} minutes.",
            throttled=True,
            retry_after=minutes * 60,
        )


def _count_failures(session: Session, condition: object, since: object) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(
                condition,  # type: ignore[arg-type]
                LoginAttempt.succeeded.is_(False),
                LoginAttempt.at > since,
            )
        )
        or 0
    )


def _forget_old_attempts(session: Session) -> None:
    """Keep the attempts table small: nothing older than a day is needed for throttling."""
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < utcnow() - timedelta(days=1)))
