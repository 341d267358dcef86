"""``ledgerlink user …``: manage portal users and their API tokens.

``cli.py`` registers this group deferred: ``identity.passwords`` hashes its timing
dummy with argon2 when imported (0.2-0.5 s), which no other command needs."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.identity import users
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.identity.users import normalise_email
from ledgerlink.store.models import User
from ledgerlink.terminal import err, out
from ledgerlink.terminal import runtime as _runtime

#: Registered in ``cli.py`` (with its help text) as a deferred group.
user_app = typer.Typer(no_args_is_help=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]{message}[/red]")
    raise typer.Exit(code)


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="The user's e-mail; it is also the login.")],
    role: Annotated[Role, typer.Option(help="viewer, operator or admin.")] = Role.VIEWER,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from standard input (for scripts)."
        ),
    ] = False,
) -> None:
    """Create a portal user. Asks for the password unless --password-stdin is given."""
    password = (
        sys.stdin.readline().rstrip("\n")
        if password_stdin
        else getpass.getpass("Password (12+ characters): ")
    )
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            user = users.create_user(
                session,
                cli_principal(),
                email=email,
                password=password,
                role=role,
                display_name=name,
            )
            out.print(f"Created {user.email} with role {user.role}.")
    except users.AccountError as exc:
        _fail(f"{exc.field}: {exc.message}")


@user_app.command("list")
def user_list() -> None:
    """List users with their roles and status."""
    runtime = _runtime()
    table = Table("id", "e-mail", "name", "role", "active")
    with runtime.db.read() as session:
        for u in session.scalars(select(User).order_by(User.email)):
            table.add_row(
                str(u.id), u.email, u.display_name, u.role, "yes" if u.is_active else "no"
            )
    out.print(table)


@user_app.command("set-role")
def user_set_role(
    email: Annotated[str, typer.Argument(help="The user's e-mail.")],
    role: Annotated[Role, typer.Argument(help="viewer, operator or admin.")],
) -> None:
    """Change a user's role."""
    _update_user(email, role=role)


@user_app.command("disable")
def user_disable(email: Annotated[str, typer.Argument(help="The user's e-mail.")]) -> None:
    """Disable a user: their sessions end and their API tokens stop working."""
    _update_user(email, is_active=False)


@user_app.command("enable")
def user_enable(email: Annotated[str, typer.Argument(help="The user's e-mail.")]) -> None:
    """Re-enable a disabled user."""
    _update_user(email, is_active=True)


@user_app.command("set-password")
def user_set_password(
    email: Annotated[str, typer.Argument(help="The user's e-mail.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    revoke_tokens: Annotated[
        bool,
        typer.Option(
            "--revoke-tokens/--keep-tokens",
            help="Also revoke the user's API tokens (the default: anyone who knew the old "
            "password may have made one).",
        ),
    ] = True,
) -> None:
    """Set a user's password (signs them out everywhere; revokes their API tokens unless
    --keep-tokens)."""
    password = (
        sys.stdin.readline().rstrip("\n")
        if password_stdin
        else getpass.getpass("New password (12+ characters): ")
    )
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            changed = users.set_password(
                session,
                cli_principal(),
                _find_user(session, email),
                password,
                revoke_tokens=revoke_tokens,
            )
    except users.AccountError as exc:
        _fail(f"{exc.field}: {exc.message}")
    tokens = changed.api_tokens_revoked
    out.print(
        f"Password changed; {changed.sessions_ended} session(s) signed out, "
        f"{tokens} API token{'' if tokens == 1 else 's'} revoked."
    )


@user_app.command("token")
def user_token(
    email: Annotated[str, typer.Argument(help="Whose token (it acts with their role).")],
    name: Annotated[str, typer.Option(help="Where the token is used, e.g. 'prometheus'.")],
    days: Annotated[int | None, typer.Option(help="Expire after this many days.")] = None,
) -> None:
    """Issue an API token and print it once."""
    runtime = _runtime()
    with runtime.db.transaction() as session:
        _, secret = users.issue_api_token(
            session, cli_principal(), _find_user(session, email), name=name, expires_in_days=days
        )
    out.print(secret, soft_wrap=True)


def _find_user(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        _fail(f"No user with e-mail {email}. `ledgerlink user list` shows who exists.")
    return user


def _update_user(email: str, **changes: Any) -> None:
    runtime = _runtime()
    try:
        with runtime.db.transaction() as session:
            user = users.update_user(
                session, cli_principal(), _find_user(session, email), **changes
            )
            out.print(
                f"{user.email}: role {user.role}, {'active' if user.is_active else 'disabled'}."
            )
    except users.AccountError as exc:
        _fail(f"{exc.field}: {exc.message}")
