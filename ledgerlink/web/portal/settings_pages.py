"""Settings: your own password; users and API tokens (administrators)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ledgerlink.identity import login, users
from ledgerlink.identity.principal import Principal
from ledgerlink.identity.roles import Role, parse_role
from ledgerlink.store.db import Database
from ledgerlink.store.models import User
from ledgerlink.web.api.inputs import INT64_MAX, CleanText, PathId
from ledgerlink.web.deps import Admin, DatabaseDep, RuntimeDep, Viewer, WriteSession
from ledgerlink.web.portal.rendering import render

router = APIRouter()

NOTICES = {
    "password": "Your password was changed. Other sessions were signed out.",
    "user-added": "User added.",
    "user-saved": "User saved.",
    "token-revoked": "Token revoked; it no longer works.",
}


def _page(
    request: Request, db: Database, principal: Principal, status_code: int = 200, **extra: Any
) -> Response:
    context: dict[str, Any] = {"users": [], "tokens": []}
    if principal.can(Role.ADMIN):
        with db.read() as session:
            context["users"] = users.all_users(session)
            context["tokens"] = users.all_api_tokens(session)
    return render(request, "settings.html", status_code=status_code, **context, **extra)


@router.get("/settings")
def settings_page(
    request: Request, principal: Viewer, db: DatabaseDep, done: str | None = None
) -> Response:
    return _page(request, db, principal, notice=NOTICES.get(done or ""))


@router.post("/account/password")
def change_own_password(
    request: Request,
    principal: Viewer,
    runtime: RuntimeDep,
    current_password: Annotated[str, Form(max_length=1024)],
    new_password: Annotated[str, Form(max_length=1024)],
    revoke_tokens: Annotated[bool, Form()] = False,
) -> Response:
    """Self-service: every role may change its own password (and only its own). Every
    session ends; the API tokens too when ticked (the form ticks it by default)."""
    client_ip = request.client.host if request.client else None
    status = 422
    with runtime.db.transaction() as session:
        user = session.get(User, principal.user_id) if principal.user_id else None
        try:
            if user is None or not login.check_current_password(
                session, runtime.settings, user, current_password, client_ip=client_ip
            ):
                error: str | None = "The current password is not right."
            else:
                users.set_password(
                    session, principal, user, new_password, revoke_tokens=revoke_tokens
                )
                error = None
        except users.AccountError as exc:
            error = exc.message
        except login.LoginRefused as exc:  # caught inside: the transaction still commits
            error, status = exc.message, 429
    if error:
        return _page(request, runtime.db, principal, status_code=status, error=error)
    return RedirectResponse("/login?signed_out=true", status_code=303)


@router.post("/settings/users")
def add_user(
    request: Request,
    principal: Admin,
    db: DatabaseDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form()],
    display_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        with db.transaction() as session:
            users.create_user(
                session,
                principal,
                email=email,
                password=password,
                role=parse_role(role),
                display_name=display_name or None,
            )
    except (users.AccountError, ValueError) as exc:
        return _page(request, db, principal, status_code=422, error=str(exc))
    return RedirectResponse("/settings?done=user-added", status_code=303)


@router.post("/settings/users/{user_id}")
def save_user(
    request: Request,
    user_id: PathId,
    principal: Admin,
    db: DatabaseDep,
    role: Annotated[str, Form()],
    is_active: Annotated[bool, Form()],
) -> Response:
    try:
        with db.transaction() as session:
            users.update_user(
                session,
                principal,
                users.get_user(session, user_id),
                role=parse_role(role),
                is_active=is_active,
            )
    except (users.AccountError, ValueError) as exc:
        return _page(request, db, principal, status_code=422, error=str(exc))
    return RedirectResponse("/settings?done=user-saved", status_code=303)


@router.post("/settings/users/{user_id}/password")
def reset_password(
    request: Request,
    user_id: PathId,
    principal: Admin,
    db: DatabaseDep,
    new_password: Annotated[str, Form(max_length=1024)],
) -> Response:
    """An administrator sets someone's password: their sessions end and their API tokens
    are revoked (the account may be in the wrong hands)."""
    try:
        with db.transaction() as session:
            user = users.get_user(session, user_id)
            email = user.email
            changed = users.set_password(session, principal, user, new_password, revoke_tokens=True)
    except users.AccountError as exc:
        return _page(request, db, principal, status_code=422, error=f"New password: {exc.message}")
    if user_id == principal.user_id:
        return RedirectResponse("/login?signed_out=true", status_code=303)
    tokens = changed.api_tokens_revoked
    return _page(
        request,
        db,
        principal,
        notice=f"Password of {email} reset. They were signed out of "
        f"{changed.sessions_ended} session(s) and {tokens} API token(s) were revoked.",
    )


@router.post("/settings/tokens")
def create_token(
    request: Request,
    principal: Admin,
    db: DatabaseDep,
    user_id: Annotated[int, Form(ge=1, le=INT64_MAX)],
    name: Annotated[CleanText, Form(max_length=100)],
    expires_in_days: Annotated[str, Form()] = "",
) -> Response:
    try:
        days = int(expires_in_days) if expires_in_days.strip() else None
        if days is not None and days < 1:
            raise users.AccountError("expires_in_days", "expiry must be at least one day")
        with db.transaction() as session:
            _, secret = users.issue_api_token(
                session,
                principal,
                users.get_user(session, user_id),
                name=name,
                expires_in_days=days,
            )
    except users.AccountError as exc:
        return _page(request, db, principal, status_code=422, error=exc.message)
    except ValueError:
        return _page(
            request,
            db,
            principal,
            status_code=422,
            error="Expires after: give a whole number of days, or leave it empty.",
        )
    return _page(request, db, principal, status_code=201, new_token=secret, notice="Token created.")


@router.post("/settings/tokens/{token_id}/revoke")
def revoke_token(token_id: PathId, principal: Admin, session: WriteSession) -> Response:
    users.revoke_api_token(session, principal, users.get_api_token(session, token_id))
    return RedirectResponse("/settings?done=token-revoked", status_code=303)
