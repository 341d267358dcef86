"""Users and API tokens."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.identity import login, users
from ledgerlink.identity.principal import Principal
from ledgerlink.identity.roles import Role
from ledgerlink.store.models import ApiToken, User
from ledgerlink.web.api.inputs import CleanText, PathId
from ledgerlink.web.problems import Problem, field_problem
from ledgerlink.web.security import admin, viewer

router = APIRouter(tags=["users"])


class UserOut(BaseModel):
    id: int
    email: str
    display_name: str
    role: Role
    is_active: bool
    created_at: datetime


class UserIn(BaseModel):
    email: CleanText = Field(max_length=254)
    password: CleanText = Field(min_length=1, max_length=1024)
    role: Role
    display_name: CleanText | None = Field(default=None, max_length=200)


class UserPatch(BaseModel):
    role: Role | None = None
    is_active: StrictBool | None = None
    display_name: CleanText | None = Field(default=None, max_length=200)


class OwnPasswordIn(BaseModel):
    current_password: CleanText = Field(min_length=1, max_length=1024)
    new_password: CleanText = Field(min_length=1, max_length=1024)
    revoke_tokens: StrictBool = Field(
        default=True,
        description="Also revoke your API tokens (this one included): anyone who knew the "
        "old password may have made one.",
    )


class PasswordResetIn(BaseModel):
    password: CleanText = Field(min_length=1, max_length=1024)
    revoke_tokens: StrictBool = Field(
        default=True,
        description="Revoke the user's API tokens. Always true when resetting another "
        "user's password.",
    )


class PasswordChangedOut(BaseModel):
    sessions_ended: int = Field(description="Portal sessions signed out.")
    api_tokens_revoked: int


class TokenIn(BaseModel):
    name: CleanText = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, strict=True, ge=1, le=3650)


class TokenOut(BaseModel):
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="The secret. Shown only in this response; store it now.")


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=Role(user.role),
        is_active=user.is_active,
        created_at=user.created_at,
    )


def _token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        user_id=token.user_id,
        name=token.name,
        prefix=token.prefix,
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


def _get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise Problem(404, "Not found", f"There is no user {user_id}.")
    return user


@router.get("/me", summary="Who am I")
def me(principal: Annotated[Principal, Depends(viewer)]) -> dict[str, str | int | None]:
    return {
        "user_id": principal.user_id,
        "email": principal.email,
        "role": principal.role.value,
        "via": principal.via,
    }


@router.post(
    "/me/password",
    summary="Change your own password",
    description="Signs you out of every portal session; revokes your API tokens unless "
    "revoke_tokens is false. Wrong current passwords slow down like sign-ins.",
    responses={429: {"description": "Too many wrong passwords: wait for Retry-After seconds."}},
)
def change_own_password(
    request: Request, body: OwnPasswordIn, principal: Annotated[Principal, Depends(viewer)]
) -> PasswordChangedOut:
    runtime = request.app.state.runtime
    client_ip = request.client.host if request.client else None
    refused: users.AccountError | login.LoginRefused | None = None
    with runtime.db.transaction() as session:  # a wrong password is recorded: no raise inside
        user = session.get(User, principal.user_id) if principal.user_id else None
        try:
            if user is None or not login.check_current_password(
                session, runtime.settings, user, body.current_password, client_ip=client_ip
            ):
                raise users.AccountError("current_password", "the current password is not right")
            changed = users.set_password(
                session, principal, user, body.new_password, revoke_tokens=body.revoke_tokens
            )
        except (users.AccountError, login.LoginRefused) as exc:
            refused = exc
    if isinstance(refused, login.LoginRefused):
        raise Problem(
            429,
            "Too many attempts",
            refused.message,
            headers={"Retry-After": str(refused.retry_after)},
        )
    if refused is not None:
        field = "new_password" if refused.field == "password" else refused.field
        raise field_problem(field, refused.message)
    return PasswordChangedOut(**asdict(changed))


@router.post(
    "/users/{user_id}/password",
    summary="Set a user's password",
    description="Signs the user out of every portal session and revokes their API tokens.",
)
def reset_password(
    request: Request,
    user_id: PathId,
    body: PasswordResetIn,
    principal: Annotated[Principal, Depends(admin)],
) -> PasswordChangedOut:
    try:
        with request.app.state.db.transaction() as session:
            changed = users.set_password(
                session,
                principal,
                _get_user(session, user_id),
                body.password,
                revoke_tokens=body.revoke_tokens,
            )
    except users.AccountError as exc:
        raise field_problem(exc.field, exc.message) from None
    return PasswordChangedOut(**asdict(changed))


@router.get("/users", summary="List users")
def list_users(request: Request, _: Annotated[Principal, Depends(admin)]) -> list[UserOut]:
    with request.app.state.db.read() as session:
        return [_user_out(u) for u in session.scalars(select(User).order_by(User.email))]


@router.post("/users", status_code=status.HTTP_201_CREATED, summary="Create a user")
def create_user(
    request: Request, body: UserIn, principal: Annotated[Principal, Depends(admin)]
) -> UserOut:
    try:
        with request.app.state.db.transaction() as session:
            user = users.create_user(
                session,
                principal,
                email=body.email,
                password=body.password,
                role=body.role,
                display_name=body.display_name,
            )
            return _user_out(user)
    except users.AccountError as exc:
        raise field_problem(exc.field, exc.message) from None


@router.patch("/users/{user_id}", summary="Change a user's role, status or name")
def patch_user(
    request: Request,
    user_id: PathId,
    body: UserPatch,
    principal: Annotated[Principal, Depends(admin)],
) -> UserOut:
    try:
        with request.app.state.db.transaction() as session:
            user = users.update_user(
                session,
                principal,
                _get_user(session, user_id),
                role=body.role,
                is_active=body.is_active,
                display_name=body.display_name,
            )
            return _user_out(user)
    except users.AccountError as exc:
        raise field_problem(exc.field, exc.message, status=409) from None


@router.get("/users/{user_id}/tokens", summary="List a user's API tokens")
def list_tokens(
    request: Request, user_id: PathId, _: Annotated[Principal, Depends(admin)]
) -> list[TokenOut]:
    with request.app.state.db.read() as session:
        _get_user(session, user_id)
        rows = session.scalars(select(ApiToken).where(ApiToken.user_id == user_id))
        return [_token_out(t) for t in rows]


@router.post("/users/{user_id}/tokens", status_code=201, summary="Issue an API token")
def issue_token(
    request: Request,
    user_id: PathId,
    body: TokenIn,
    principal: Annotated[Principal, Depends(admin)],
) -> NewTokenOut:
    try:
        with request.app.state.db.transaction() as session:
            row, secret = users.issue_api_token(
                session,
                principal,
                _get_user(session, user_id),
                name=body.name,
                expires_in_days=body.expires_in_days,
            )
            return NewTokenOut(**_token_out(row).model_dump(), token=secret)
    except users.AccountError as exc:
        raise field_problem(exc.field, exc.message) from None


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
def revoke_token(
    request: Request, token_id: PathId, principal: Annotated[Principal, Depends(admin)]
) -> None:
    with request.app.state.db.transaction() as session:
        token = session.get(ApiToken, token_id)
        if token is None:
            raise Problem(404, "Not found", f"There is no API token {token_id}.")
        users.revoke_api_token(session, principal, token)
