"""SBC's OAuth 2.0 authorization-code flow, and refresh tokens that rotate on every use.

SBC kills a refresh token the moment it is used and hands back a new one. If two workers
refresh at once, one of them ends up holding a dead token and the connection is lost
until someone re-authorises. So: exactly one refresher at a time, and the new tokens are
committed to the vault *before* anyone uses the new access token.

* In-process: a lock per connection.
* Across processes: the refresh runs inside a write transaction that locks the
  connection's row (``SELECT … FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` takes the
  database write lock on SQLite). A waiter that gets the lock re-reads the stored token
  and uses it if someone else already refreshed.

``invalid_grant`` means the refresh token is revoked or expired: the connection is
marked *needs re-authorisation* and nobody retries (the portal says what to do).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.connectors.errors import AuthExpired, Misconfigured, Unavailable
from ledgerlink.connectors.http import tls_context
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection, ConnectionSecret
from ledgerlink.vault import Vault

log = structlog.get_logger("ledgerlink.connectors.sbc")

SYSTEM = "sbc"
#: Renew this long before the access token expires, so a request never carries a token
#: that dies in flight.
RENEW_MARGIN = timedelta(seconds=45)
#: How long a refreshed token set whose store failed is retried (a PostgreSQL restart takes
#: about a second, a failover up to half a minute): Sage has already revoked the old one.
STORE_ROTATED_SECONDS = 60.0
REAUTHORISE = (
    "Sage no longer accepts this connection's authorisation (the refresh token was revoked "
    "or expired). An administrator must open Accounting Integration → Sage Business Cloud "
    "and use 'Connect to Sage' again"
)


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime | None
    scope: str = ""
    requested_by_id: str = ""

    def fresh(self, now: datetime) -> bool:
        return self.access_expires_at - RENEW_MARGIN > now


class SbcOAuth:
    """The HTTP side of the flow: build the consent URL, exchange a code, refresh."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        authorize_url: str,
        token_url: str,
        redirect_uri: str,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 20.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.client_id = client_id
        #: Token lifetimes count from this clock's now (tests move it past an expiry).
        self.clock = clock
        self.client_secret = client_secret
        self.authorize_url = authorize_url
        self.token_url = token_url
        self.redirect_uri = redirect_uri
        self._transport = transport
        self._timeout = timeout

    def authorization_url(self, state: str) -> str:
        query = urlencode(
            {
                "filter": "apiv3.1",
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": "full_access",
                "state": state,
            }
        )
        return f"{self.authorize_url}?{query}"

    def exchange_code(self, code: str) -> TokenSet:
        return self._token_request(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        )

    def refresh(self, refresh_token: str) -> TokenSet:
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _token_request(self, form: dict[str, str]) -> TokenSet:
        form = {**form, "client_id": self.client_id, "client_secret": self.client_secret}
        try:
            with httpx.Client(
                transport=self._transport, timeout=self._timeout, verify=tls_context()
            ) as client:
                response = client.post(self.token_url, data=form)
        except httpx.HTTPError as exc:
            raise Unavailable(
                SYSTEM,
                f"Sage's sign-in service could not be reached ({type(exc).__name__}); "
                "it will be retried",
            ) from exc
        body = _json(response)
        if response.status_code == 200 and body.get("access_token"):
            return _token_set(body, self.clock.now())
        error = str(body.get("error") or "")
        if error == "invalid_grant":
            raise AuthExpired(SYSTEM, REAUTHORISE, status=response.status_code, upstream_code=error)
        if error in ("invalid_client", "unauthorized_client") or response.status_code == 401:
            raise Misconfigured(
                SYSTEM,
                "Sage does not recognise the client id and secret; check them under "
                "Accounting Integration → Sage Business Cloud",
                status=response.status_code,
                upstream_code=error or None,
            )
        if response.status_code >= 500 or response.status_code == 429:
            raise Unavailable(
                SYSTEM,
                f"Sage's sign-in service failed (HTTP {response.status_code})",
                status=response.status_code,
            )
        raise Misconfigured(
            SYSTEM,
            f"Sage refused the token request: {error or response.status_code} "
            f"{body.get('error_description', '')}".strip(),
            status=response.status_code,
            upstream_code=error or None,
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _token_set(body: dict[str, Any], now: datetime) -> TokenSet:
    refresh_life = body.get("refresh_token_expires_in")
    return TokenSet(
        access_token=str(body["access_token"]),
        access_expires_at=now + timedelta(seconds=int(body.get("expires_in") or 300)),
        refresh_token=str(body.get("refresh_token") or ""),
        refresh_expires_at=now + timedelta(seconds=int(refresh_life)) if refresh_life else None,
        scope=str(body.get("scope") or ""),
        requested_by_id=str(body.get("requested_by_id") or ""),
    )


# -- persistence --------------------------------------------------------------------------

ACCESS_SECRET = "access_token"  # noqa: S105 - a secret name, not a secret
REFRESH_SECRET = "refresh_token"  # noqa: S105 - a secret name
_process_locks: dict[int, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def _lock_for(connection_id: int) -> threading.Lock:
    with _process_locks_guard:
        return _process_locks.setdefault(connection_id, threading.Lock())


class TokenVault:
    """Stored tokens of one SBC connection: read, refresh under lock, store atomically."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        connection_id: int,
        oauth: SbcOAuth,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        #: Whether a token is still fresh is judged on this clock (the OAuth client's).
        self.clock = clock or oauth.clock
        self.vault = vault
        self.connection_id = connection_id
        self.oauth = oauth
        self._cached: TokenSet | None = None

    # Called after the consent redirect: the first tokens of a connection.
    def store_initial(self, session: Session, tokens: TokenSet) -> None:
        connection = session.get(Connection, self.connection_id)
        if connection is None:
            raise Misconfigured(SYSTEM, f"connection {self.connection_id} no longer exists")
        self._store(connection, tokens)
        connection.auth_status = "connected"
        connection.auth_detail = None
        self._cached = tokens

    def cached_token(self) -> str | None:
        """The in-memory access token if it is still fresh (no database access)."""
        if self._cached is not None and self._cached.fresh(self.clock.now()):
            return self._cached.access_token
        return None

    def access_token(self) -> str:
        """A token valid for at least RENEW_MARGIN; refreshes (once, under lock) if not."""
        now = self.clock.now()
        if self._cached is not None and self._cached.fresh(now):
            return self._cached.access_token
        return self._refresh(rejected=None)

    def renew_after_rejection(self, rejected: str) -> str:
        """Sage answered 401 for ``rejected``: refresh, unless another worker already did."""
        return self._refresh(rejected=rejected)

    def _refresh(self, rejected: str | None) -> str:
        with _lock_for(self.connection_id):
            issued: list[TokenSet] = []
            try:
                return self._refresh_locked(rejected, issued)
            except DBAPIError:
                if not issued:
                    raise
                # Sage rotated the refresh token (the old one is dead now) but the database
                # lost the transaction storing the new one (a restart or failover mid-way):
                # store it as soon as the database answers again, or the connection is
                # left holding a dead token until someone uses 'Connect to Sage' again.
                return self._store_rotated(issued[0])

    def _refresh_locked(self, rejected: str | None, issued: list[TokenSet]) -> str:
        """Refresh under the connection's row lock; a token set Sage issued is appended to
        ``issued`` before it is stored, so a caller can still keep it if the store fails."""
        failure: AuthExpired | None = None
        with self.db.transaction() as session:
            connection = self._locked_connection(session)
            stored = self._load(connection)
            now = self.clock.now()
            if stored is not None and stored.fresh(now) and stored.access_token != rejected:
                self._cached = stored  # someone else refreshed while we waited
                return stored.access_token
            refresh_token = self._secret(connection, REFRESH_SECRET)
            if not refresh_token:
                connection.auth_status = "not_connected"
                raise AuthExpired(
                    SYSTEM,
                    "This Sage connection has not been authorised yet: an administrator "
                    "must use 'Connect to Sage' under Accounting Integration",
                )
            try:
                tokens = self.oauth.refresh(refresh_token)
            except AuthExpired as exc:
                connection.auth_status = "needs_reauthorisation"
                connection.auth_detail = exc.message
                failure = exc  # committed below, then raised
            else:
                if not tokens.refresh_token:  # Sage always rotates; keep the old if not
                    tokens = _with_refresh(tokens, refresh_token)
                issued.append(tokens)
                self._store(connection, tokens)
                connection.auth_status = "connected"
                connection.auth_detail = None
                self._cached = tokens
                log.info("sbc.token_refreshed", connection_id=self.connection_id)
                return tokens.access_token
        raise failure

    def _store_rotated(self, tokens: TokenSet) -> str:
        """Store a token set Sage issued whose first store failed, retrying while the
        database comes back (up to STORE_ROTATED_SECONDS)."""
        deadline = self.clock.monotonic() + STORE_ROTATED_SECONDS
        wait = 0.1
        while True:
            try:
                with self.db.transaction() as session:
                    connection = self._locked_connection(session)
                    self._store(connection, tokens)
                    connection.auth_status = "connected"
                    connection.auth_detail = None
            except DBAPIError as exc:
                if self.clock.monotonic() >= deadline:
                    log.error(
                        "sbc.rotated_token_lost",
                        connection_id=self.connection_id,
                        error=f"{type(exc).__name__}",
                    )
                    raise
                self.clock.sleep(wait)
                wait = min(wait * 2, 2.0)
                continue
            self._cached = tokens
            log.warning("sbc.rotated_token_stored_late", connection_id=self.connection_id)
            return tokens.access_token

    def _locked_connection(self, session: Session) -> Connection:
        query = select(Connection).where(Connection.id == self.connection_id)
        if not self.db.is_sqlite:
            query = query.with_for_update()
        connection = session.scalars(query).one_or_none()
        if connection is None:
            raise Misconfigured(SYSTEM, f"connection {self.connection_id} no longer exists")
        session.refresh(connection, ["secrets"])
        return connection

    def _secret(self, connection: Connection, name: str) -> str | None:
        for secret in connection.secrets:
            if secret.name == name:
                return self.vault.decrypt(secret.ciphertext)
        return None

    def _load(self, connection: Connection) -> TokenSet | None:
        raw = self._secret(connection, ACCESS_SECRET)
        refresh = self._secret(connection, REFRESH_SECRET)
        if not raw or not refresh:
            return None
        data = json.loads(raw)
        return TokenSet(
            access_token=data["token"],
            access_expires_at=datetime.fromisoformat(data["expires_at"]),
            refresh_token=refresh,
            refresh_expires_at=(
                datetime.fromisoformat(data["refresh_expires_at"])
                if data.get("refresh_expires_at")
                else None
            ),
        )

    def _store(self, connection: Connection, tokens: TokenSet) -> None:
        access = json.dumps(
            {
                "token": tokens.access_token,
                "expires_at": tokens.access_expires_at.isoformat(),
                "refresh_expires_at": (
                    tokens.refresh_expires_at.isoformat() if tokens.refresh_expires_at else None
                ),
            }
        )
        values = {ACCESS_SECRET: access, REFRESH_SECRET: tokens.refresh_token}
        existing = {s.name: s for s in connection.secrets}
        for name, value in values.items():
            if name in existing:
                existing[name].ciphertext = self.vault.encrypt(value)
            else:
                connection.secrets.append(
                    ConnectionSecret(name=name, ciphertext=self.vault.encrypt(value))
                )


def _with_refresh(tokens: TokenSet, refresh_token: str) -> TokenSet:
    return TokenSet(
        tokens.access_token,
        tokens.access_expires_at,
        refresh_token,
        tokens.refresh_expires_at,
        tokens.scope,
        tokens.requested_by_id,
    )


class SbcAuth:
    """The :class:`~ledgerlink.connectors.http.Auth` of SBC API calls."""

    def __init__(self, tokens: TokenVault) -> None:
        self.tokens = tokens
        self._last: str | None = None

    async def headers(self) -> dict[str, str]:
        token = self.tokens.cached_token() or await asyncio.to_thread(self.tokens.access_token)
        self._last = token
        return {"Authorization": f"Bearer {token}"}

    async def renew(self) -> None:
        await asyncio.to_thread(self.tokens.renew_after_rejection, self._last or "")
