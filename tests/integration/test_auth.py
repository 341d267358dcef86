"""Signing in, sessions, CSRF, API tokens and throttling, as users experience them."""

from __future__ import annotations

from sqlalchemy import select

from ledgerlink.identity.roles import Role
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.models import User, UserSession
from tests.support.web import PASSWORD, csrf_token, make_user, sign_in


def test_passwords_are_stored_as_argon2id_hashes(db: Database) -> None:
    account = make_user(db, Role.ADMIN)
    with db.read() as session:
        stored = session.scalar(select(User.password_hash).where(User.email == account.email))
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_signing_in_sets_an_http_only_session_cookie_and_shows_the_dashboard(client, db) -> None:
    account = make_user(db, Role.OPERATOR)
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={"email": account.email, "password": PASSWORD, "csrftoken": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "ll_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    page = client.get("/")
    assert page.status_code == 200
    assert "Dashboard" in page.text
    assert account.email in page.text


def test_the_session_secret_is_not_stored_in_the_database(client, db) -> None:
    account = make_user(db, Role.VIEWER)
    sign_in(client, account.email)
    cookie = client.cookies.get("ll_session")
    with db.read() as session:
        stored = session.scalars(select(UserSession.token_hash)).all()
    assert len(stored) == 1
    assert cookie not in stored[0]


def test_a_wrong_password_is_refused_without_saying_whether_the_account_exists(client, db):
    account = make_user(db, Role.VIEWER)
    token = csrf_token(client)
    wrong = client.post(
        "/login", data={"email": account.email, "password": "not-it-at-all!", "csrftoken": token}
    )
    unknown = client.post(
        "/login",
        data={"email": "nobody@example.org", "password": "not-it-at-all!", "csrftoken": token},
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "E-mail or password is wrong" in wrong.text
    assert "E-mail or password is wrong" in unknown.text


def test_login_is_throttled_after_repeated_failures(client, db, settings: Settings) -> None:
    account = make_user(db, Role.VIEWER)
    token = csrf_token(client)
    for _ in range(settings.login_max_failures):
        client.post(
            "/login",
            data={"email": account.email, "password": "wrong-password-1", "csrftoken": token},
        )
    locked = client.post(
        "/login", data={"email": account.email, "password": PASSWORD, "csrftoken": token}
    )
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.text
    assert int(locked.headers["retry-after"]) > 0


def test_a_form_post_without_the_csrf_token_is_refused(client, db) -> None:
    account = make_user(db, Role.ADMIN)
    sign_in(client, account.email)
    response = client.post(
        "/settings/users", data={"email": "x@example.org", "password": PASSWORD, "role": "viewer"}
    )
    assert response.status_code == 403
    assert "form had expired" in response.text
    with db.read() as session:
        assert session.scalar(select(User).where(User.email == "x@example.org")) is None


def test_login_form_itself_requires_the_csrf_token(client, db) -> None:
    account = make_user(db, Role.VIEWER)
    response = client.post("/login", data={"email": account.email, "password": PASSWORD})
    assert response.status_code == 403


def test_signing_out_ends_the_session(client, db) -> None:
    account = make_user(db, Role.VIEWER)
    token = sign_in(client, account.email)
    cookie = client.cookies.get("ll_session")
    client.post("/logout", data={"csrftoken": token})
    client.cookies.set("ll_session", cookie)  # replaying the old cookie must not work
    assert client.get("/", follow_redirects=False).status_code == 303


def test_changing_your_password_signs_out_other_sessions(client, db) -> None:
    account = make_user(db, Role.VIEWER)
    token = sign_in(client, account.email)
    response = client.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": "a much better passphrase",
            "csrftoken": token,
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303
    sign_in(client, account.email, "a much better passphrase")


def test_api_tokens_authenticate_until_revoked(client, db) -> None:
    admin = make_user(db, Role.ADMIN)
    headers = {"Authorization": f"Bearer {admin.token}"}
    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["role"] == "admin"
    token_id = client.get("/api/v1/users/1/tokens", headers=headers).json()[0]["id"]
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=headers).status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_a_disabled_user_can_no_longer_use_their_token(client, db) -> None:
    admin = make_user(db, Role.ADMIN)
    operator = make_user(db, Role.OPERATOR)
    with db.read() as session:
        operator_id = session.scalar(select(User.id).where(User.email == operator.email))
    response = client.patch(
        f"/api/v1/users/{operator_id}",
        json={"is_active": False},
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    assert response.status_code == 200
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {operator.token}"}).status_code
        == 401
    )


def test_the_last_administrator_cannot_be_demoted(client, db) -> None:
    admin = make_user(db, Role.ADMIN)
    response = client.patch(
        "/api/v1/users/1",
        json={"role": "viewer"},
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "role"
