"""Users and API tokens."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field, StrictBool

from ledgerlink.identity import login, users
from ledgerlink.identity.roles import Role
from ledgerlink.store.models import ApiToken, User
from ledgerlink.web.api.inputs import CleanText, PathId
from ledgerlink.web.deps import Admin, ReadSession, RuntimeDep, Viewer, WriteSession
from ledgerlink.web.problems import Problem, field_problem

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


@router.get("/me", summary="Who am I")
def me(principal: Viewer) -> dict[str, str | int | None]:
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
    request: Request, body: OwnPasswordIn, principal: Viewer, runtime: RuntimeDep
) -> PasswordChangedOut:
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
    user_id: PathId, body: PasswordResetIn, principal: Admin, session: WriteSession
) -> PasswordChangedOut:
    changed = users.set_password(
        session,
        principal,
        users.get_user(session, user_id),
        body.password,
        revoke_tokens=body.revoke_tokens,
    )
    return PasswordChangedOut(**asdict(changed))


@router.get("/users", summary="List users")
def list_users(_: Admin, session: ReadSession) -> list[UserOut]:
    return [_user_out(u) for u in users.all_users(session)]


@router.post("/users", status_code=status.HTTP_201_CREATED, summary="Create a user")
def create_user(body: UserIn, principal: Admin, session: WriteSession) -> UserOut:
    user = users.create_user(
        session,
        principal,
        email=body.email,
        password=body.password,
        role=body.role,
        display_name=body.display_name,
    )
    return _user_out(user)


@router.patch("/users/{user_id}", summary="Change a user's role, status or name")
def patch_user(
    user_id: PathId, body: UserPatch, principal: Admin, session: WriteSession
) -> UserOut:
    try:
        user = users.update_user(
            session,
            principal,
            users.get_user(session, user_id),
            role=body.role,
            is_active=body.is_active,
            display_name=body.display_name,
        )
    except users.AccountError as exc:  # a change the accounts refuse conflicts with them
        raise field_problem(exc.field, exc.message, status=409) from None
    return _user_out(user)


@router.get("/users/{user_id}/tokens", summary="List a user's API tokens")
def list_tokens(user_id: PathId, _: Admin, session: ReadSession) -> list[TokenOut]:
    return [_token_out(t) for t in users.api_tokens_of(session, user_id)]


@router.post("/users/{user_id}/tokens", status_code=201, summary="Issue an API token")
def issue_token(
    user_id: PathId, body: TokenIn, principal: Admin, session: WriteSession
) -> NewTokenOut:
    row, secret = users.issue_api_token(
        session,
        principal,
        users.get_user(session, user_id),
        name=body.name,
        expires_in_days=body.expires_in_days,
    )
    return NewTokenOut(**_token_out(row).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
def revoke_token(token_id: PathId, principal: Admin, session: WriteSession) -> None:
    users.revoke_api_token(session, principal, users.get_api_token(session, token_id))
