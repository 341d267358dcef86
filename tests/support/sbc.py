"""The SBC simulator on a real socket, and a small client that speaks to it as an app would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.connectors.http import tls_context
from ledgerlink.sandbox.faults import FaultInjector
from ledgerlink.sandbox.sbc import SbcConfig, create_app
from tests.support.asgi_server import serve_in_thread

CALLBACK = "http://127.0.0.1:9/callback"


class SbcClient:
    """Runs the authorization-code flow and calls the API with the token it got."""

    def __init__(self, base_url: str, config: SbcConfig) -> None:
        self.base_url = base_url
        self.config = config
        self.http = httpx.Client(
            base_url=base_url, timeout=10, follow_redirects=False, verify=tls_context()
        )
        self.tokens: dict[str, Any] = {}
        self.business: str | None = None

    def close(self) -> None:
        self.http.close()

    # -- OAuth ------------------------------------------------------------------------------

    def authorize(self, **overrides: str) -> httpx.Response:
        params = {
            "filter": "apiv3.1",
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": CALLBACK,
            "scope": "full_access",
            "state": "state-123",
            **overrides,
        }
        return self.http.get("/oauth2/auth/central", params=params)

    def approve(self, state: str = "state-123") -> str:
        """Approve on the consent page (or be auto-approved); the authorization code."""
        response = self.authorize(state=state)
        if response.status_code == 200:  # the consent page
            response = self.http.post(
                "/oauth2/auth/central/decision",
                data={
                    "redirect_uri": CALLBACK,
                    "state": state,
                    "scope": "full_access",
                    "decision": "allow",
                },
            )
        assert response.status_code == 302, response.text
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert query["state"] == [state]
        return query["code"][0]

    def token_request(self, **form: str) -> httpx.Response:
        body = {
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            **form,
        }
        return self.http.post("/token", data=body)

    def exchange(self, code: str, redirect_uri: str = CALLBACK) -> httpx.Response:
        return self.token_request(
            grant_type="authorization_code", code=code, redirect_uri=redirect_uri
        )

    def refresh(self, refresh_token: str | None = None) -> httpx.Response:
        return self.token_request(
            grant_type="refresh_token", refresh_token=refresh_token or self.tokens["refresh_token"]
        )

    def connect(self) -> SbcClient:
        response = self.exchange(self.approve())
        assert response.status_code == 200, response.text
        self.tokens = response.json()
        return self

    # -- API --------------------------------------------------------------------------------

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.tokens['access_token']}", **extra}
        if self.business:
            headers["X-Business"] = self.business
        return headers

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(f"/v3.1{path}", params=params, headers=self.headers())

    def ok(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, resource: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/v3.1{path}", json={resource: body}, headers=self.headers())

    def put(self, path: str, resource: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.put(f"/v3.1{path}", json={resource: body}, headers=self.headers())

    def delete(self, path: str, **params: Any) -> httpx.Response:
        return self.http.delete(f"/v3.1{path}", params=params, headers=self.headers())

    def created(self, path: str, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post(path, resource, body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def all_items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item, following ``$next`` the way the envelope says."""
        items: list[dict[str, Any]] = []
        body = self.ok(path, **params)
        while True:
            items.extend(body["$items"])
            if not body["$next"]:
                return items
            response = self.http.get(f"/v3.1{body['$next']}", headers=self.headers())
            assert response.status_code == 200, response.text
            body = response.json()

    # -- reference data the tests post against ------------------------------------------------

    def first(self, collection: str, **params: Any) -> dict[str, Any]:
        return dict(self.ok(f"/{collection}", attributes="all", **params)["$items"][0])

    def sales_account_id(self) -> str:
        accounts = self.ok("/ledger_accounts", attributes="all", ledger_account_type_id="SALES")
        return str(accounts["$items"][0]["id"])


@contextmanager
def running_sbc(
    state_dir: Path,
    config: SbcConfig | None = None,
    faults: FaultInjector | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Iterator[tuple[str, SbcConfig]]:
    config = config or SbcConfig(auto_approve=True, rate_limit_per_minute=0)
    app = create_app(state_dir, config=config, faults=faults, clock=clock)
    with serve_in_thread(app) as base_url:
        yield base_url, config


@contextmanager
def sbc_client(
    state_dir: Path, config: SbcConfig | None = None, faults: FaultInjector | None = None
) -> Iterator[SbcClient]:
    with running_sbc(state_dir, config, faults) as (base_url, used):
        client = SbcClient(base_url, used).connect()
        try:
            yield client
        finally:
            client.close()


def connect_ledgerlink(runtime: Any, base_url: str, rate_limit_per_minute: int = 0) -> int:
    """Create ledgerlink's SBC connection to the simulator at ``base_url`` and authorise it the
    way ``make demo`` does (consent "Allow", code exchanged into the vault); its id.

    The client-side throttle defaults to off here because tests run the simulator without
    its rate limit; pass 100 to behave like a production connection."""
    from sqlalchemy import select

    from ledgerlink import connections, demo
    from ledgerlink.identity.principal import cli_principal
    from ledgerlink.sandbox.supervisor import SimulatorAddress
    from ledgerlink.store.models import Connection

    where = {"sbc": SimulatorAddress("sbc", base_url)}
    with runtime.db.transaction() as session:
        demo.ensure_connections(runtime, session, demo.sandbox_connections(runtime, where))
    demo.connect_sbc_sandbox(runtime, where)
    with runtime.db.transaction() as session:
        connection = session.scalars(select(Connection).where(Connection.kind == "sbc")).one()
        assert connection.auth_status == "connected", connection.auth_detail
        connections.update(
            session,
            runtime.vault,
            cli_principal(),
            connection,
            settings={"rate_limit_per_minute": rate_limit_per_minute},
        )
        return int(connection.id)
