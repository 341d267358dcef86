"""Sage rotates the refresh token on every refresh (the old one dies at once). If the
database loses the transaction that stores the new one (PostgreSQL restarted or failed
over mid-refresh), the connection must not be left holding the dead token: found by
`bench/soak.py`, where a PostgreSQL restart left one of ten SBC connections needing
'Connect to Sage' again and 279 of its payments in exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import make_url

from ledgerlink.connectors.factory import sbc_token_vault
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.faults import FaultInjector
from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.settings import Settings
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.models import Connection
from tests.support.databases import PostgresFactory
from tests.support.sbc import connect_ledgerlink, running_sbc

pytestmark = pytest.mark.postgresql


@pytest.fixture
def runtime(postgres_factory: PostgresFactory, tmp_path: Path) -> Iterator[Runtime]:
    url = postgres_factory.create(tmp_path)
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=url,
        vault_keys=Fernet.generate_key().decode(),
        _env_file=None,  # type: ignore[call-arg]
    )
    runtime = Runtime(settings)
    upgrade(runtime.db)
    yield runtime
    runtime.db.dispose()
    postgres_factory.drop(url)


class CutsTheDatabaseAfterRefreshing(httpx.BaseTransport):
    """Forwards to the simulator; once Sage has answered a refresh (and so revoked the old
    refresh token), every other session on ledgerlink's database is terminated, as a
    PostgreSQL restart does: the transaction that was to store the new token is gone."""

    def __init__(self, database_url: str) -> None:
        self.real = httpx.HTTPTransport()
        self.dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
        self.cuts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        if b"grant_type=refresh_token" in request.read() and self.cuts == 0:
            response.read()
            with psycopg.connect(self.dsn, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            self.cuts += 1
        return response


def _state(base_url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{base_url}/_sandbox/state").json())


def test_a_refresh_token_rotated_while_the_database_restarts_is_kept(
    runtime: Runtime, tmp_path: Path
) -> None:
    config = SbcConfig(rate_limit_per_minute=0, seed_people=0)
    with running_sbc(tmp_path / "sbc", config, FaultInjector()) as (base_url, _):
        connection_id = connect_ledgerlink(runtime, base_url)
        with runtime.db.read() as session:
            connection = session.get(Connection, connection_id)
            assert connection is not None
            session.expunge(connection)
        cutting = CutsTheDatabaseAfterRefreshing(runtime.settings.resolved_database_url)
        vault = sbc_token_vault(runtime, connection, transport=cutting)
        stale = vault.access_token()
        httpx.post(f"{base_url}/_sandbox/expire_tokens", json={})

        renewed = vault.renew_after_rejection(stale)  # Sage rotates; the database drops out

        assert cutting.cuts == 1
        assert renewed != stale
        # Another process (a worker) renewing from what is stored gets a working token.
        httpx.post(f"{base_url}/_sandbox/expire_tokens", json={})
        other = sbc_token_vault(runtime, connection)
        assert other.renew_after_rejection(renewed) not in (stale, renewed)
        counts = _state(base_url)["token_requests"]
        assert "invalid_grant" not in counts
        assert counts["refresh_token"] == 2
        with runtime.db.read() as session:
            stored = session.get(Connection, connection_id)
            assert stored is not None
            assert stored.auth_status == "connected"
