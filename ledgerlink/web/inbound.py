"""Inbound endpoints for push sources of payment events.

They are public (no session, no API token): a silent post is verified later by reading
the transaction back from PayTrace; a webhook must carry a valid Standard Webhooks
signature made with the connection's ``webhook_secret`` (timestamp within five minutes,
so a captured delivery cannot be replayed later). Both answer as soon as the event is in
the inbox; a repeated delivery is answered the same way and stored once.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ledgerlink import connections
from ledgerlink.payments import inbox
from ledgerlink.payments.jobs import request_processing
from ledgerlink.store.models import Connection
from ledgerlink.web.problems import Problem, problem_response

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
        jobs = request.app.state.runtime.jobs
        writer = request.app.state.inbox_writer = inbox.InboxWriter(
            request.app.state.db, on_new=lambda session: request_processing(jobs, session)
        )
    return await writer.submit(event)


async def _form_fields(request: Request) -> dict[str, str]:
    """The posted form. PayTrace sends it URL-encoded: parsed from the body directly,
    which costs a fraction of the general multipart-capable form parser under a burst."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        form = await request.form()
        return {k: str(v) for k, v in form.items()}
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Problem(413, "Too large", f"a silent post may have at most {MAX_BODY} bytes")
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


@router.post("/paytrace/{connection_id}/silent-post", summary="PayTrace silent post (form)")
async def silent_post(request: Request, connection_id: ConnectionId) -> Response:
    _paytrace(request, connection_id)
    fields = await _form_fields(request)
    try:
        event = inbox.from_silent_post(fields, connection_id)
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


class InboundFastPath:
    """Serves ``/inbound/…`` before the portal's middleware (sessions, CSRF, metrics,
    request ids): push sources send bursts, need none of it, and each layer costs per
    request. The routes stay registered with the app (documentation, route checks); this
    only answers them sooner."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes = [
            Route(
                "/inbound/paytrace/{connection_id:int}/silent-post",
                _fast(silent_post),
                methods=["POST"],
            ),
            Route(
                "/inbound/paytrace/{connection_id:int}/webhook", _fast(webhook), methods=["POST"]
            ),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/inbound/"):
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    await route.handle({**scope, **child}, receive, send)
                    return
        await self.app(scope, receive, send)


def _fast(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, int(request.path_params["connection_id"]))  # type: ignore[no-any-return]
        except Problem as problem:
            return problem_response(problem, request.url.path)

    return endpoint
