"""Signing in, sessions, CSRF, API tokens and throttling, as users experience them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ledgerlink.identity import login
from ledgerlink.identity.roles import Role
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.models import ApiToken, AuditEntry, User, UserSession
from tests.support.server import run_cli, running_server, server_env
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


def test_repeated_wrong_passwords_make_the_next_attempt_wait(client, db, settings) -> None:  # type: ignore[no-untyped-def]
    account = make_user(db, Role.VIEWER)
    token = csrf_token(client)
    for _ in range(settings.login_max_failures):
        client.post(
            "/login",
            data={"email": account.email, "password": "wrong-password-1", "csrftoken": token},
        )
    waiting = client.post(
        "/login", data={"email": account.email, "password": PASSWORD, "csrftoken": token}
    )
    assert waiting.status_code == 429
    assert "Too many failed sign-ins" in waiting.text
    assert int(waiting.headers["retry-after"]) > 0


# ---- progressive delays, not lockouts ---------------------------------------------------

ATTACKER = "198.51.100.66"
ADMIN_DESK = "203.0.113.10"


def _attempt(
    db: Database, settings: Settings, email: str, password: str, ip: str, at: datetime
) -> login.LoginRefused | None:
    """One sign-in as the portal makes it; the refusal, or None when it succeeded."""
    with db.transaction() as session:
        try:
            login.authenticate(
                session, settings, email=email, password=password, client_ip=ip, now=at
            )
        except login.LoginRefused as refused:
            return refused
    return None


def test_each_further_wrong_password_doubles_the_wait_up_to_the_cap(db, settings) -> None:  # type: ignore[no-untyped-def]
    account = make_user(db, Role.OPERATOR)
    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    for _ in range(settings.login_max_failures - 1):  # a few typos cost no wait at all
        refused = _attempt(db, settings, account.email, "not the password", ATTACKER, now)
        assert refused is not None
        assert not refused.throttled
    waits = []
    for _ in range(15):
        refused = _attempt(db, settings, account.email, "not the password", ATTACKER, now)
        assert refused is not None
        assert not refused.throttled  # the wait was over: checked, and wrong
        early = _attempt(db, settings, account.email, PASSWORD, ATTACKER, now)
        assert early is not None
        assert early.throttled
        waits.append(early.retry_after)
        now += timedelta(seconds=early.retry_after)  # wait it out, then guess again
    assert waits[:6] == [1, 2, 4, 8, 16, 32]
    assert waits[-1] == settings.login_lockout_minutes * 60
    assert max(waits) == settings.login_lockout_minutes * 60


def test_the_right_password_after_the_wait_signs_in_and_ends_the_run(db, settings) -> None:  # type: ignore[no-untyped-def]
    account = make_user(db, Role.VIEWER)
    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    for _ in range(settings.login_max_failures + 3):
        _attempt(db, settings, account.email, "mistyped it", ADMIN_DESK, now)
        now += timedelta(minutes=1)
    assert _attempt(db, settings, account.email, PASSWORD, ADMIN_DESK, now) is None
    # the run ended: the next typo does not start with a long wait
    _attempt(db, settings, account.email, "mistyped it", ADMIN_DESK, now)
    assert _attempt(db, settings, account.email, PASSWORD, ADMIN_DESK, now) is None


@pytest.mark.slow  # 160 argon2 verifications
def test_an_attacker_guessing_cannot_lock_the_admin_out(db, settings) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    others = [make_user(db, Role.VIEWER, f"staff{n}@example.org") for n in range(3)]
    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    for round_ in range(40):  # guessing the admin's password and spraying the others
        for target in [admin, *others]:
            refused = _attempt(db, settings, target.email, f"guess-{round_}", ATTACKER, now)
            assert refused is not None
        now += timedelta(seconds=5)
    assert _attempt(db, settings, admin.email, PASSWORD, ATTACKER, now) is not None
    # the admin at their own desk signs in at once, while the attacker still waits
    assert _attempt(db, settings, admin.email, PASSWORD, ADMIN_DESK, now) is None
    assert _attempt(db, settings, others[0].email, PASSWORD, ADMIN_DESK, now) is None


@pytest.mark.slow  # a real `ledgerlink serve`
def test_spoofed_forwarded_for_does_not_dodge_the_wait(settings, db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Without trusted proxies, a client spraying many accounts while claiming a new
    address each time is still one peer, and its address's run of failures grows."""
    free = 4  # the setting's default is 30: each failure costs the server a full argon2 hash
    env = {**server_env(settings), "LEDGERLINK_LOGIN_FAILURES_PER_ADDRESS": str(free)}
    with (
        running_server(env, tmp_path / "server.log") as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        http.get("/login")
        token = http.cookies["csrftoken"]
        statuses = []
        for n in range(free + 1):
            response = http.post(
                "/login",
                data={"email": f"user{n}@example.org", "password": "guess", "csrftoken": token},
                headers={"x-forwarded-for": f"192.0.2.{n + 1}"},
            )
            statuses.append(response.status_code)
    assert statuses[:-1] == [401] * free
    assert statuses[-1] == 429
    assert "from your address" in response.text


@pytest.mark.slow  # a real `ledgerlink serve`
def test_behind_a_trusted_proxy_each_client_address_has_its_own_wait(
    settings, db, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    account = make_user(db, Role.ADMIN)
    env = {**server_env(settings), "LEDGERLINK_TRUSTED_PROXIES": "127.0.0.1"}
    with (
        running_server(env, tmp_path / "server.log") as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        http.get("/login")
        token = http.cookies["csrftoken"]

        def sign_in_from(ip: str, password: str) -> httpx.Response:
            return http.post(
                "/login",
                data={"email": account.email, "password": password, "csrftoken": token},
                headers={"x-forwarded-for": ip},
                follow_redirects=False,
            )

        for _ in range(settings.login_max_failures + 2):
            sign_in_from(ATTACKER, "guess")
        assert sign_in_from(ATTACKER, PASSWORD).status_code == 429
        assert sign_in_from(ADMIN_DESK, PASSWORD).status_code == 303


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


# ---- a password change can revoke API tokens ----------------------------------------------

NEW_PASSWORD = "a much better passphrase"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _user_id(db: Database, email: str) -> int:
    with db.read() as session:
        found = session.scalar(select(User.id).where(User.email == email))
    assert found is not None
    return found


def _audited(db: Database, action: str) -> list[AuditEntry]:
    with db.read() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_changing_your_password_in_the_portal_revokes_your_tokens_when_ticked(
    app, client, db
) -> None:  # type: ignore[no-untyped-def]
    account = make_user(db, Role.OPERATOR)
    token = sign_in(client, account.email)
    settings_page = client.get("/settings").text
    assert 'name="revoke_tokens"' in settings_page
    assert "checked" in settings_page.split('name="revoke_tokens"')[1].split(">")[0]
    with TestClient(app, base_url="http://127.0.0.1") as elsewhere:  # another browser
        sign_in(elsewhere, account.email)
        response = client.post(
            "/account/password",
            data={
                "current_password": PASSWORD,
                "new_password": NEW_PASSWORD,
                "revoke_tokens": "on",
                "csrftoken": token,
            },
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert elsewhere.get("/", follow_redirects=False).status_code == 303  # signed out
    assert client.get("/api/v1/me", headers=_bearer(account.token)).status_code == 401
    [changed] = _audited(db, "user.password_changed")
    assert changed.after == {"sessions_ended": 2, "api_tokens_revoked": 1}
    [revoked] = _audited(db, "api_token.revoked")
    assert revoked.actor == account.email


def test_changing_your_password_without_the_tick_keeps_your_tokens(client, db) -> None:  # type: ignore[no-untyped-def]
    account = make_user(db, Role.OPERATOR)
    token = sign_in(client, account.email)
    response = client.post(
        "/account/password",
        data={"current_password": PASSWORD, "new_password": NEW_PASSWORD, "csrftoken": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert client.get("/api/v1/me", headers=_bearer(account.token)).status_code == 200
    assert _audited(db, "api_token.revoked") == []


def test_changing_your_password_through_the_api_revokes_your_tokens_by_default(client, db) -> None:  # type: ignore[no-untyped-def]
    account = make_user(db, Role.VIEWER)
    wrong = client.post(
        "/api/v1/me/password",
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=_bearer(account.token),
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "current_password"
    response = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=_bearer(account.token),
    )
    assert response.status_code == 200
    assert response.json() == {"sessions_ended": 0, "api_tokens_revoked": 1}
    assert client.get("/api/v1/me", headers=_bearer(account.token)).status_code == 401
    sign_in(client, account.email, NEW_PASSWORD)


def test_an_api_password_change_may_keep_the_tokens(client, db) -> None:  # type: ignore[no-untyped-def]
    account = make_user(db, Role.VIEWER)
    response = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD, "revoke_tokens": False},
        headers=_bearer(account.token),
    )
    assert response.status_code == 200
    assert response.json()["api_tokens_revoked"] == 0
    assert client.get("/api/v1/me", headers=_bearer(account.token)).status_code == 200


def test_an_admin_resetting_a_password_through_the_api_revokes_sessions_and_tokens(
    app, client, db
) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    operator = make_user(db, Role.OPERATOR)
    operator_id = _user_id(db, operator.email)
    sign_in(client, operator.email)
    with TestClient(app, base_url="http://127.0.0.1") as admin_client:
        refused = admin_client.post(
            f"/api/v1/users/{operator_id}/password",
            json={"password": NEW_PASSWORD, "revoke_tokens": False},
            headers=_bearer(admin.token),
        )
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "revoke_tokens"
        response = admin_client.post(
            f"/api/v1/users/{operator_id}/password",
            json={"password": NEW_PASSWORD},
            headers=_bearer(admin.token),
        )
    assert response.status_code == 200
    assert response.json() == {"sessions_ended": 1, "api_tokens_revoked": 1}
    assert client.get("/", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me", headers=_bearer(operator.token)).status_code == 401
    assert client.get("/api/v1/me", headers=_bearer(admin.token)).status_code == 200
    [changed] = _audited(db, "user.password_changed")
    assert changed.actor == admin.email
    assert changed.entity_id == str(operator_id)


def test_an_admin_resetting_a_password_in_the_portal_revokes_sessions_and_tokens(
    app, client, db
) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    operator = make_user(db, Role.OPERATOR)
    operator_id = _user_id(db, operator.email)
    token = sign_in(client, admin.email)
    with TestClient(app, base_url="http://127.0.0.1") as operator_client:
        sign_in(operator_client, operator.email)
        response = client.post(
            f"/settings/users/{operator_id}/password",
            data={"new_password": NEW_PASSWORD, "csrftoken": token},
        )
        assert response.status_code == 200
        assert "signed out" in response.text
        assert operator_client.get("/", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me", headers=_bearer(operator.token)).status_code == 401
    assert client.get("/", follow_redirects=False).status_code == 200  # the admin stays in
    [revoked] = _audited(db, "api_token.revoked")
    assert revoked.actor == admin.email


@pytest.mark.slow  # three CLI processes
def test_setting_a_password_from_the_cli_revokes_tokens_unless_asked_to_keep_them(
    settings, db
) -> None:  # type: ignore[no-untyped-def]
    kept = make_user(db, Role.OPERATOR, "kept@example.org")
    revoked = make_user(db, Role.OPERATOR, "revoked@example.org")
    env = server_env(settings)
    out = run_cli(
        ["user", "set-password", revoked.email, "--password-stdin"], env, stdin=NEW_PASSWORD + "\n"
    )
    assert "1 API token revoked" in out
    run_cli(
        ["user", "set-password", kept.email, "--password-stdin", "--keep-tokens"],
        env,
        stdin=NEW_PASSWORD + "\n",
    )
    with db.read() as session:
        live = {t.user.email: t.revoked_at is None for t in session.scalars(select(ApiToken))}
    assert live == {"kept@example.org": True, "revoked@example.org": False}
    assert [e.actor.startswith("cli:") for e in _audited(db, "api_token.revoked")] == [True]


def test_guessing_the_current_password_on_the_settings_page_is_slowed_down(
    client, db, settings
) -> None:  # type: ignore[no-untyped-def]
    """A session left open on someone's desk must not become a way to find the password."""
    account = make_user(db, Role.VIEWER)
    token = sign_in(client, account.email)
    statuses = [
        client.post(
            "/account/password",
            data={
                "current_password": f"guess number {n}",
                "new_password": NEW_PASSWORD,
                "csrftoken": token,
            },
        ).status_code
        for n in range(settings.login_max_failures + 1)
    ]
    assert statuses == [422] * settings.login_max_failures + [429]


def test_guessing_the_current_password_through_the_api_is_slowed_down(client, db, settings) -> None:  # type: ignore[no-untyped-def]
    """A stolen API token must not become a way to find its owner's password."""
    account = make_user(db, Role.VIEWER)
    responses = [
        client.post(
            "/api/v1/me/password",
            json={"current_password": f"guess number {n}", "new_password": NEW_PASSWORD},
            headers=_bearer(account.token),
        )
        for n in range(settings.login_max_failures + 1)
    ]
    assert [r.status_code for r in responses] == [422] * settings.login_max_failures + [429]
    assert int(responses[-1].headers["retry-after"]) >= 1


def test_an_out_of_range_id_on_the_settings_page_is_a_clear_error(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    token = sign_in(client, admin.email)
    too_big = 2**63
    for path, data in [
        (f"/settings/users/{too_big}/password", {"new_password": NEW_PASSWORD}),
        (f"/settings/users/{too_big}", {"role": "viewer", "is_active": "true"}),
        (f"/settings/tokens/{too_big}/revoke", {}),
        ("/settings/tokens", {"user_id": str(too_big), "name": "x"}),
    ]:
        response = client.post(path, data={**data, "csrftoken": token})
        assert response.status_code == 422, (path, response.status_code)
