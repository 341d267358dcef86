"""Creating and changing user accounts. Every change is written to the audit chain in
the same transaction, with password hashes never included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ledgerlink.identity import passwords, tokens
from ledgerlink.identity.principal import Principal
from ledgerlink.identity.roles import Role
from ledgerlink.store import audit
from ledgerlink.store.models import ApiToken, User, UserSession
from ledgerlink.store.types import utcnow


class AccountError(ValueError):
    """A request about an account that cannot be carried out; ``field`` names the input."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class AccountNotFound(LookupError):
    """No user or API token with that id; the message says which."""


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise AccountNotFound(f"There is no user {user_id}.")
    return user


def get_api_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise AccountNotFound(f"There is no API token {token_id}.")
    return token


def all_users(session: Session) -> list[User]:
    """Every user, by e-mail (the Settings page and ``GET /users``)."""
    return list(session.scalars(select(User).order_by(User.email)))


def all_api_tokens(session: Session) -> list[ApiToken]:
    """Every API token, newest first (the Settings page)."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc())))


def api_tokens_of(session: Session, user_id: int) -> list[ApiToken]:
    """A user's API tokens (raises :class:`AccountNotFound` for an unknown user)."""
    get_user(session, user_id)
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user_id)))


def normalise_email(raw: str) -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise AccountError("email", f"not a valid e-mail address: {exc}") from None


def user_snapshot(user: User) -> dict[str, object]:
    """What the audit chain records about a user (never the password hash)."""
    return {
        "email": user.email,
        "display_name": user.display_name,
        "role": user.role,
        "is_active": user.is_active,
    }


def create_user(
    session: Session,
    by: Principal,
    *,
    email: str,
    password: str,
    role: Role,
    display_name: str | None = None,
) -> User:
    address = normalise_email(email)
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise AccountError("email", f"a user with e-mail {address} already exists")
    try:
        passwords.check_strength(password)
    except passwords.WeakPassword as exc:
        raise AccountError("password", str(exc)) from None
    user = User(
        email=address,
        display_name=(display_name or address.split("@")[0]).strip()[:200],
        role=role.value,
        password_hash=passwords.hash_password(password),
        is_active=True,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=by.actor,
        action="user.created",
        entity_type="user",
        entity_id=user.id,
        after=user_snapshot(user),
    )
    return user


def update_user(
    session: Session,
    by: Principal,
    user: User,
    *,
    role: Role | None = None,
    is_active: bool | None = None,
    display_name: str | None = None,
) -> User:
    before = user_snapshot(user)
    demoting_admin = user.role == Role.ADMIN and (
        (role is not None and role != Role.ADMIN) or is_active is False
    )
    if demoting_admin and _active_admins(session) <= 1:
        raise AccountError(
            "role", "this is the last active administrator; make another user admin first"
        )
    if role is not None:
        user.role = role.value
    if display_name is not None:
        user.display_name = display_name.strip()[:200] or user.display_name
    if is_active is not None:
        user.is_active = is_active
        if not is_active:
            end_sessions(session, user)
    session.flush()
    audit.record(
        session,
        actor=by.actor,
        action="user.updated",
        entity_type="user",
        entity_id=user.id,
        before=before,
        after=user_snapshot(user),
    )
    return user


@dataclass(frozen=True)
class PasswordChanged:
    """What a password change ended besides the old password."""

    sessions_ended: int
    api_tokens_revoked: int


def set_password(
    session: Session, by: Principal, user: User, password: str, *, revoke_tokens: bool
) -> PasswordChanged:
    """Change a password and sign the user out everywhere; with ``revoke_tokens`` their
    API tokens stop working too (someone who knew the old password may have made one).

    A user changing their own password chooses; an administrator resetting someone
    else's password always revokes (the reset is for an account that may be in the
    wrong hands). Each revocation is audited, and the change records how many.
    """
    by_someone_else = by.user_id is not None and by.user_id != user.id
    if by_someone_else and not revoke_tokens:
        raise AccountError(
            "revoke_tokens",
            "an administrator resetting another user's password always revokes their API "
            "tokens; leave revoke_tokens out or set it to true",
        )
    try:
        passwords.check_strength(password)
    except passwords.WeakPassword as exc:
        raise AccountError("password", str(exc)) from None
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = utcnow()
    changed = PasswordChanged(
        sessions_ended=end_sessions(session, user),
        api_tokens_revoked=revoke_api_tokens(session, by, user) if revoke_tokens else 0,
    )
    audit.record(
        session,
        actor=by.actor,
        action="user.password_changed",
        entity_type="user",
        entity_id=user.id,
        after={
            "sessions_ended": changed.sessions_ended,
            "api_tokens_revoked": changed.api_tokens_revoked,
        },
    )
    return changed


def end_sessions(session: Session, user: User) -> int:
    """Sign the user out of every portal session; returns how many there were."""
    ended = (
        session.scalar(
            select(func.count()).select_from(UserSession).where(UserSession.user_id == user.id)
        )
        or 0
    )
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    return ended


def revoke_api_tokens(session: Session, by: Principal, user: User) -> int:
    """Revoke every live API token of ``user`` (each audited); returns how many."""
    live = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    for token in live:
        revoke_api_token(session, by, token)
    return len(live)


def issue_api_token(
    session: Session, by: Principal, user: User, *, name: str, expires_in_days: int | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the row and the secret, shown only this once."""
    label = name.strip()
    if not label:
        raise AccountError("name", "give the token a name that says where it is used")
    secret, prefix = tokens.new_api_token()
    expires_at: datetime | None = None
    if expires_in_days is not None:
        expires_at = utcnow() + timedelta(days=expires_in_days)
    row = ApiToken(
        user_id=user.id,
        name=label[:100],
        token_hash=tokens.digest(secret),
        prefix=prefix,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=by.actor,
        action="api_token.created",
        entity_type="api_token",
        entity_id=row.id,
        after={
            "user": user.email,
            "name": row.name,
            "prefix": prefix,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return row, secret


def revoke_api_token(session: Session, by: Principal, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(
            session,
            actor=by.actor,
            action="api_token.revoked",
            entity_type="api_token",
            entity_id=token.id,
            after={"user": token.user.email, "name": token.name, "prefix": token.prefix},
        )


def _active_admins(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.ADMIN.value, User.is_active.is_(True))
        )
        or 0
    )
