"""Browser-facing hardening: security headers on every response, Secure cookies over HTTPS,
forwarded headers honoured only from trusted proxies, and owner-only data files."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from ledgerlink.identity.roles import Role
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings
from ledgerlink.store.db import Database
from ledgerlink.store.models import UserSession
from tests.support.server import running_server, server_env
from tests.support.web import PASSWORD, make_user, sign_in


def _assert_security_headers(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    policy = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy, where
    assert "frame-ancestors 'none'" in policy, where
    assert "'unsafe-inline'" not in policy, where
    assert response.headers.get("x-frame-options") == "DENY", where
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("referrer-policy") in ("same-origin", "no-referrer"), where


def test_every_kind_of_response_carries_the_security_headers(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    responses = [
        client.get("/login"),  # portal page
        client.get("/static/portal.css"),  # static file
        client.get("/healthz"),
        client.get("/api/v1/me"),  # API, not signed in
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {admin.token}"}),
        client.get("/api/docs", headers={"Authorization": f"Bearer {admin.token}"}),
        client.get("/no-such-page", headers={"Authorization": f"Bearer {admin.token}"}),
        client.post("/login", data={"email": "a@example.org", "password": "x"}),  # CSRF failure
        client.post("/inbound/paytrace/999999/silent-post", data={"TRANSACTIONID": "1"}),
    ]
    assert responses[-2].status_code == 403
    assert responses[-1].status_code == 404  # answered by the inbound fast path
    for response in responses:
        _assert_security_headers(response)
        assert "strict-transport-security" not in response.headers  # plain HTTP


def test_the_api_docs_page_runs_no_inline_script(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    page = client.get("/api/docs", headers={"Authorization": f"Bearer {admin.token}"})
    assert page.status_code == 200
    assert "<script>" not in page.text.replace(" ", "")  # only <script src=…>
    assert "/static/swagger/swagger-ui-bundle.js" in page.text


def test_over_https_cookies_are_secure_and_hsts_is_sent(app, db) -> None:  # type: ignore[no-untyped-def]
    account = make_user(db, Role.VIEWER)
    with TestClient(app, base_url="https://127.0.0.1") as client:
        login_page = client.get("/login")
        assert "Secure" in login_page.headers["set-cookie"]  # the CSRF cookie
        assert login_page.headers["strict-transport-security"].startswith("max-age=")
        signed_in = client.post(
            "/login",
            data={
                "email": account.email,
                "password": PASSWORD,
                "csrftoken": client.cookies["csrftoken"],
            },
            follow_redirects=False,
        )
        assert signed_in.status_code == 303
        session_cookie = signed_in.headers["set-cookie"]
        assert session_cookie.startswith("ll_session=")
        assert "Secure" in session_cookie
        assert "HttpOnly" in session_cookie


def test_over_plain_http_cookies_are_secure_only_when_configured(settings, db) -> None:  # type: ignore[no-untyped-def]
    from ledgerlink.web.app import create_app

    account = make_user(db, Role.VIEWER)
    settings.run_embedded_worker = False
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        sign_in(client, account.email)
        assert "Secure" not in client.get("/login").headers.get("set-cookie", "")
    forced = settings.model_copy(update={"secure_cookies": True})
    with TestClient(create_app(forced), base_url="http://127.0.0.1") as client:
        assert "Secure" in client.get("/login").headers["set-cookie"]


# ---- forwarded headers: only from trusted proxies ---------------------------------------


def _sign_in_over_http(base: str, email: str, headers: dict[str, str]) -> httpx.Response:
    """Sign in against a real server, presenting ``headers`` as a proxy would add them."""
    with httpx.Client(base_url=base, timeout=30) as http:
        page = http.get("/login", headers=headers)
        token = page.cookies.get("csrftoken") or _cookie_value(page, "csrftoken")
        return http.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrftoken": token},
            headers={**headers, "cookie": f"csrftoken={token}"},
            follow_redirects=False,
        )


def _cookie_value(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie in {response.headers}")


def _session_addresses(db: Database) -> list[str | None]:
    with db.read() as session:
        return list(session.scalars(select(UserSession.client_ip)))


SPOOFED = {"x-forwarded-for": "203.0.113.77", "x-forwarded-proto": "https"}


@pytest.mark.slow  # a real `ledgerlink serve`
def test_forwarded_headers_from_an_untrusted_peer_are_ignored(settings, db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    account = make_user(db, Role.VIEWER)
    with running_server(server_env(settings), tmp_path / "server.log") as base:
        response = _sign_in_over_http(base, account.email, SPOOFED)
    assert response.status_code == 303, response.text
    assert _session_addresses(db) == ["127.0.0.1"]  # the peer, not the claimed client
    assert "Secure" not in response.headers["set-cookie"]  # not really HTTPS
    assert "strict-transport-security" not in response.headers


@pytest.mark.slow  # a real `ledgerlink serve`
def test_forwarded_headers_from_a_trusted_proxy_give_the_client_address_and_https(
    settings, db, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    account = make_user(db, Role.VIEWER)
    env = {**server_env(settings), "LEDGERLINK_TRUSTED_PROXIES": "127.0.0.0/8"}
    with running_server(env, tmp_path / "server.log") as base:
        response = _sign_in_over_http(base, account.email, SPOOFED)
    assert response.status_code == 303, response.text
    assert _session_addresses(db) == ["203.0.113.77"]
    assert "Secure" in response.headers["set-cookie"]  # HTTPS at the proxy
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_trusted_proxies_are_addresses_or_networks() -> None:
    parsed = Settings(trusted_proxies="10.0.0.1, 192.168.0.0/16", _env_file=None)  # type: ignore[call-arg]
    assert parsed.trusted_proxies == ["10.0.0.1", "192.168.0.0/16"]
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(trusted_proxies="proxy.example.org", _env_file=None)  # type: ignore[call-arg]


# ---- data files readable by the owner only ---------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_embedded_database_and_its_directory_are_owner_only(tmp_path: Path) -> None:
    var = tmp_path / "var"
    settings = Settings(var_dir=var, vault_keys=None, _env_file=None)  # type: ignore[call-arg]
    runtime = Runtime(settings)
    from ledgerlink.store.migrate import upgrade

    upgrade(runtime.db)
    with runtime.db.transaction() as session:  # a write creates the -wal and -shm files
        session.execute(text("CREATE TABLE scratch (x INTEGER)"))
    runtime.vault  # noqa: B018 - creates vault.key
    files = sorted(p.name for p in var.iterdir())
    assert "ledgerlink.db" in files
    assert _mode(var) == 0o700
    for name in files:
        assert _mode(var / name) & 0o077 == 0, f"{name} is {oct(_mode(var / name))}"
    runtime.close()


def test_existing_world_readable_data_files_are_fixed_at_start(tmp_path: Path) -> None:
    var = tmp_path / "var"
    sandbox = var / "sandbox"
    sandbox.mkdir(parents=True)
    var.chmod(0o755)
    sandbox.chmod(0o755)
    for path in (var / "ledgerlink.db", var / "ledgerlink.db-wal", sandbox / "paytrace.sqlite3"):
        path.write_bytes(b"")
        path.chmod(0o644)
    Runtime(Settings(var_dir=var, _env_file=None))  # type: ignore[call-arg]
    assert _mode(var) == 0o700
    assert _mode(sandbox) == 0o700
    assert _mode(var / "ledgerlink.db") == 0o600
    assert _mode(var / "ledgerlink.db-wal") == 0o600
    assert _mode(sandbox / "paytrace.sqlite3") == 0o600
