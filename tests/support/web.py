"""Helpers for driving the app in-process (``TestClient``) as different users."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.testclient import TestClient

from ledgerlink.identity import users
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database

PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    email: str
    role: Role
    token: str  # a bearer API token of this user


def make_user(db: Database, role: Role, email: str | None = None) -> Account:
    address = email or f"{role.value}@example.org"
    with db.transaction() as session:
        user = users.create_user(
            session, cli_principal(), email=address, password=PASSWORD, role=role
        )
        _, token = users.issue_api_token(session, cli_principal(), user, name="tests")
    return Account(address, role, token)


def csrf_token(client: TestClient) -> str:
    """Fetch the login page so the CSRF cookie is set; return its value."""
    client.get("/login")
    token = client.cookies.get("csrftoken")
    assert token, "the portal must set a csrftoken cookie on the login page"
    return token


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the real login form; returns the CSRF token for later forms."""
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrftoken": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return token
