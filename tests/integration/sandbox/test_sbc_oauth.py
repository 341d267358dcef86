"""Contract tests of the SBC simulator's OAuth: the authorization-code flow of the API notes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from ledgerlink.clock import ManualClock
from ledgerlink.sandbox.sbc import SbcConfig
from tests.support.sbc import CALLBACK, SbcClient, running_sbc


def _client(base_url: str, config: SbcConfig) -> SbcClient:
    return SbcClient(base_url, config)


def test_the_consent_page_asks_and_allow_returns_a_code_with_the_state(tmp_path: Path) -> None:
    with running_sbc(tmp_path, SbcConfig()) as (base_url, config):
        client = _client(base_url, config)
        page = client.authorize(state="abc")
        assert page.status_code == 200
        assert "Allow" in page.text
        assert config.client_id in page.text
        allowed = client.http.post(
            "/oauth2/auth/central/decision",
            data={"redirect_uri": CALLBACK, "state": "abc", "decision": "allow"},
        )
        assert allowed.status_code == 302
        target = urlsplit(allowed.headers["location"])
        assert f"{target.scheme}://{target.netloc}{target.path}" == CALLBACK
        query = parse_qs(target.query)
        assert query["state"] == ["abc"]
        assert query["code"][0]


def test_deny_returns_access_denied_to_the_callback(tmp_path: Path) -> None:
    with running_sbc(tmp_path, SbcConfig()) as (base_url, config):
        client = _client(base_url, config)
        denied = client.http.post(
            "/oauth2/auth/central/decision",
            data={"redirect_uri": CALLBACK, "state": "s1", "decision": "deny"},
        )
        query = parse_qs(urlsplit(denied.headers["location"]).query)
        assert query == {"error": ["access_denied"], "state": ["s1"]}


def test_an_unknown_client_id_is_refused_without_redirecting(tmp_path: Path) -> None:
    with running_sbc(tmp_path) as (base_url, config):
        response = _client(base_url, config).authorize(client_id="someone-else")
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "client id" in response.text


def test_a_redirect_uri_that_is_not_registered_is_refused(tmp_path: Path) -> None:
    config = SbcConfig(auto_approve=True, redirect_uris=["https://ledgerlink.example/cb"])
    with running_sbc(tmp_path, config) as (base_url, used):
        response = _client(base_url, used).authorize()
        assert response.status_code == 400
        assert "registered" in response.text


def test_the_token_answer_has_the_documented_fields(tmp_path: Path) -> None:
    with running_sbc(tmp_path) as (base_url, config):
        client = _client(base_url, config)
        response = client.exchange(client.approve())
        assert response.status_code == 200
        body = response.json()
        assert body["expires_in"] == 300
        assert body["refresh_token_expires_in"] == 31 * 86_400
        assert body["token_type"] == "bearer"
        assert body["scope"] == "full_access"
        assert body["access_token"]
        assert body["refresh_token"]
        assert body["requested_by_id"]


def test_a_code_works_once(tmp_path: Path) -> None:
    with running_sbc(tmp_path) as (base_url, config):
        client = _client(base_url, config)
        code = client.approve()
        assert client.exchange(code).status_code == 200
        again = client.exchange(code)
        assert again.status_code == 400
        assert again.json() == {"error": "invalid_grant"}


def test_a_code_dies_after_its_lifetime(tmp_path: Path) -> None:
    config = SbcConfig(auto_approve=True, code_lifetime_seconds=1)
    clock = ManualClock()
    with running_sbc(tmp_path, config, clock=clock) as (base_url, used):
        client = _client(base_url, used)
        code = client.approve()
        clock.advance(1.2)
        assert client.exchange(code).json() == {"error": "invalid_grant"}


def test_a_code_must_be_exchanged_with_the_same_redirect_uri(tmp_path: Path) -> None:
    with running_sbc(tmp_path) as (base_url, config):
        client = _client(base_url, config)
        response = client.exchange(client.approve(), redirect_uri="http://127.0.0.1:9/other")
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"


def test_the_refresh_token_rotates_and_the_old_one_dies(tmp_path: Path) -> None:
    with running_sbc(tmp_path) as (base_url, config):
        client = _client(base_url, config).connect()
        first = client.tokens["refresh_token"]
        rotated = client.refresh(first)
        assert rotated.status_code == 200
        second = rotated.json()["refresh_token"]
        assert second != first
        assert client.refresh(first).json() == {"error": "invalid_grant"}
        third = client.refresh(second)
        assert third.status_code == 200
        client.tokens = third.json()
        assert client.get("/contacts").status_code == 200


def test_an_expired_access_token_gets_401_authorization_failure(tmp_path: Path) -> None:
    config = SbcConfig(auto_approve=True, token_lifetime_seconds=1, rate_limit_per_minute=0)
    clock = ManualClock()
    with running_sbc(tmp_path, config, clock=clock) as (base_url, used):
        client = _client(base_url, used).connect()
        assert client.get("/contacts").status_code == 200
        clock.advance(1.2)
        response = client.get("/contacts")
        assert response.status_code == 401
        [problem] = response.json()
        assert problem["$dataCode"] == "AuthorizationFailure"
        assert problem["$severity"] == "error"


def test_wrong_client_secret_is_invalid_client(tmp_path: Path) -> None:
    with running_sbc(tmp_path) as (base_url, config):
        client = _client(base_url, config)
        code = client.approve()
        response = client.token_request(
            grant_type="authorization_code", code=code, redirect_uri=CALLBACK, client_secret="nope"
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


def test_the_token_endpoint_takes_form_encoding_only(tmp_path: Path) -> None:
    with running_sbc(tmp_path) as (base_url, config):
        response = httpx.post(
            f"{base_url}/token",
            json={
                "grant_type": "refresh_token",
                "refresh_token": "x",
                "client_id": config.client_id,
                "client_secret": config.client_secret,
            },
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


def test_revoked_refresh_tokens_answer_invalid_grant(tmp_path: Path) -> None:
    with running_sbc(tmp_path) as (base_url, config):
        client = _client(base_url, config).connect()
        answer = httpx.post(
            f"{base_url}/_sandbox/expire_tokens", json={"revoke_refresh_tokens": True}
        )
        assert answer.json() == {"expired_access_tokens": 1, "revoked_refresh_tokens": 1}
        assert client.get("/contacts").status_code == 401
        assert client.refresh().json() == {"error": "invalid_grant"}


def test_tokens_and_records_survive_a_restart(tmp_path: Path) -> None:
    with running_sbc(tmp_path) as (base_url, config):
        client = _client(base_url, config).connect()
        contact = client.created(
            "/contacts", "contact", {"name": "Restart Proof", "contact_type_ids": ["CUSTOMER"]}
        )
        tokens = client.tokens
    with running_sbc(tmp_path) as (base_url, config):
        again = _client(base_url, config)
        again.tokens = tokens
        assert again.ok(f"/contacts/{contact['id']}")["name"] == "Restart Proof"
        assert again.refresh().status_code == 200
