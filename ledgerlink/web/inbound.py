"""Inbound endpoints for push sources of payment events.

They are public (no session, no API token): a silent post is verified later by reading
the transaction back from PayTrace; a webhook must carry a valid Standard Webhooks
signature made with the connection's ``webhook_secret`` (timestamp within five minutes,
so a captured delivery cannot be replayed later). Both answer as soon as the event is in
the inbox; a repeated delivery is answered the same way and stored once.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ledgerlink import connections
from ledgerlink.payments import inbox
from ledgerlink.store.models import Connection
from ledgerlink.web.problems import Problem

router = APIRouter(prefix="/inbound", tags=["inbound"])
MAX_BODY = 64 * 1024
ConnectionId = Annotated[int, Path(description="The PayTrace connection the events belong to.")]


_KNOWN_TTL = 10.0


def _paytrace(request: Request, connection_id: int) -> Connection:
    """The PayTrace connection (remembered for a few seconds: a burst of events would
    otherwise read it once per event)."""
    known: dict[int, tuple[float, Connection]] | None = getattr(
        request.app.state, "inbound_connections", None
    )
    if known is None:
        known = request.app.state.inbound_connections = {}
    cached = known.get(connection_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    with request.app.state.db.read() as session:
        connection: Connection | None = session.get(Connection, connection_id)
        if connection is None or connection.kind != "paytrace":
            raise Problem(404, "Not found", f"there is no PayTrace connection {connection_id}")
        session.expunge(connection)
    known[connection_id] = (time.monotonic() + _KNOWN_TTL, connection)
    return connection


async def _store(request: Request, event: inbox.InboundEvent) -> tuple[int | None, bool]:
    writer = getattr(request.app.state, "inbox_writer", None)
    if writer is None:
        writer = request.app.state.inbox_writer = inbox.InboxWriter(request.app.state.db)
    return await writer.submit(event)


@router.post("/paytrace/{connection_id}/silent-post", summary="PayTrace silent post (form)")
async def silent_post(request: Request, connection_id: ConnectionId) -> Response:
    _paytrace(request, connection_id)
    form = await request.form()
    try:
        event = inbox.from_silent_post({k: str(v) for k, v in form.items()}, connection_id)
    except inbox.EventRefused as exc:
        raise Problem(
            400, "Event refused", exc.message, errors=[{"field": exc.field, "message": exc.message}]
        ) from None
    await _store(request, event)
    return PlainTextResponse("OK")


@router.post(
    "/paytrace/{connection_id}/webhook", summary="Payment event signed with Standard Webhooks"
)
async def webhook(request: Request, connection_id: ConnectionId) -> Response:
    connection = _paytrace(request, connection_id)
    secret = connections.read_secret(request.app.state.runtime.vault, connection, "webhook_secret")
    if not secret:
        raise Problem(
            409,
            "Webhooks not set up",
            "this connection has no webhook secret; an administrator sets one under Accounting "
            "Integration → PayTrace before a source may push events",
        )
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Problem(413, "Too large", f"an event body may have at most {MAX_BODY} bytes")
    try:
        parsed = Webhook(secret).verify(body, dict(request.headers))
    except WebhookVerificationError as exc:
        raise Problem(
            401, "Signature refused", f"the webhook signature did not verify: {exc}"
        ) from None
    try:
        event = inbox.from_webhook(parsed, request.headers.get("webhook-id", ""), connection_id)
    except inbox.EventRefused as exc:
        raise Problem(
            400, "Event refused", exc.message, errors=[{"field": exc.field, "message": exc.message}]
        ) from None
    event_id, new = await _store(request, event)
    return JSONResponse(
        {"accepted": True, "duplicate": not new, "event_id": event_id}, 202 if new else 200
    )
