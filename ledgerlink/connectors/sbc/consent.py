"""'Connect to Sage': the OAuth authorization-code flow with a callback on ledgerlink.
These portal routes live with the connector; the registry's descriptor hands them to the
portal (``ConnectorKind.routes``).

The ``state`` parameter is signed (HMAC with a vault-derived key), names the connection,
expires after ten minutes, and is bound to this browser by a nonce cookie — so a consent
started elsewhere (or forged) cannot attach someone else's Sage business to ours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.connectors.sbc.wiring import CALLBACK_PATH, sbc_oauth, sbc_token_vault
from ledgerlink.identity.principal import Principal
from ledgerlink.store import audit
from ledgerlink.store.models import Connection
from ledgerlink.web.security import admin

router = APIRouter()

KIND = "sbc"
STATE_COOKIE = "llk_sbc_oauth"
STATE_LIFETIME = 600


def render_error(request: Request, status_code: int, message: str) -> Response:
    """The portal's error page."""
    # Imported here: importing the portal package mounts these routes (a real cycle).
    from ledgerlink.web.portal.rendering import render_error as portal_error

    return portal_error(request, status_code, message)


def _key(request: Request) -> bytes:
    return bytes(request.app.state.runtime.vault.derive_secret("sbc-oauth-state"))


def make_state(key: bytes, connection_id: int, nonce: str, now: float | None = None) -> str:
    payload = f"{connection_id}.{nonce}.{int((now or time.time()) + STATE_LIFETIME)}"
    signature = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
    return base64.urlsafe_b64encode(f"{payload}.{signature}".encode()).decode().rstrip("=")


def read_state(key: bytes, state: str, nonce: str | None) -> int | None:
    """The connection id if ``state`` is ours, fresh and bound to this browser's nonce."""
    try:
        padded = state + "=" * (-len(state) % 4)
        connection_id, state_nonce, expires, signature = (
            base64.urlsafe_b64decode(padded).decode().split(".")
        )
    except (ValueError, UnicodeDecodeError):
        return None
    payload = f"{connection_id}.{state_nonce}.{expires}"
    expected = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return None
    if nonce is None or not hmac.compare_digest(state_nonce, nonce):
        return None
    if int(expires) < time.time() or not connection_id.isdigit():
        return None
    return int(connection_id)


@router.post("/connections/{connection_id}/sbc/connect")
def start_connect(
    request: Request, connection_id: int, _: Annotated[Principal, Depends(admin)]
) -> Response:
    runtime = request.app.state.runtime
    with runtime.db.read() as session:
        connection = session.get(Connection, connection_id)
        if connection is None or connection.kind != KIND:
            return render_error(request, 404, "There is no such Sage Business Cloud connection.")
        try:
            oauth = sbc_oauth(runtime, connection, request_base_url=str(request.base_url))
        except UpstreamError as exc:
            return render_error(request, 400, exc.message)
    nonce = secrets.token_urlsafe(16)
    response = RedirectResponse(
        oauth.authorization_url(make_state(_key(request), connection_id, nonce)), 303
    )
    response.set_cookie(
        STATE_COOKIE,
        nonce,
        max_age=STATE_LIFETIME,
        httponly=True,
        samesite="lax",  # sent on the top-level redirect back from Sage
        secure=runtime.settings.secure_cookies,
        path=CALLBACK_PATH,
    )
    return response


@router.get(CALLBACK_PATH)
def finish_connect(
    request: Request,
    principal: Annotated[Principal, Depends(admin)],
    state: str = "",
    code: str = "",
    error: str = "",
) -> Response:
    runtime = request.app.state.runtime
    connection_id = read_state(_key(request), state, request.cookies.get(STATE_COOKIE))
    if connection_id is None:
        return render_error(
            request,
            400,
            "This sign-in with Sage could not be verified (it expired, was started in another "
            "browser, or was tampered with). Start again with 'Connect to Sage'.",
        )
    if error or not code:
        return render_error(
            request,
            400,
            f"Sage did not grant access ({error or 'no code returned'}). Start again with "
            "'Connect to Sage' and approve the request.",
        )
    with runtime.db.transaction() as session:
        connection = session.get(Connection, connection_id)
        if connection is None or connection.kind != KIND:
            return render_error(request, 404, "That Sage connection no longer exists.")
        try:
            vault = sbc_token_vault(runtime, connection, request_base_url=str(request.base_url))
            tokens = vault.oauth.exchange_code(code)
            vault.store_initial(session, tokens)
        except UpstreamError as exc:
            return render_error(request, 400, exc.message)
        audit.record(
            session,
            actor=principal.actor,
            action="connection.authorised",
            entity_type="connection",
            entity_id=connection.id,
            after={"auth_status": "connected", "requested_by_id": tokens.requested_by_id},
        )
    response = RedirectResponse(f"/connections/{connection_id}?done=connected", 303)
    response.delete_cookie(STATE_COOKIE, path=CALLBACK_PATH)
    return response
