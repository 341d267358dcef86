"""Inbound endpoints for push sources of payment events.

They are public (no session, no API token). A silent post is unsigned, so it is only a
hint: it is stored apart and what gets posted is PayTrace's own record, read back by id
(:mod:`ledgerlink.payments.hints`). A webhook must carry a valid Standard Webhooks
signature made with the connection's ``webhook_secret`` (timestamp within five minutes,
so a captured delivery cannot be replayed later), and is read back from PayTrace too.
Both answer as soon as the event is in the inbox; a repeated delivery is answered the
same way and stored once. Bodies are capped before they are parsed, and silent posts
(and failed signatures) are rate-limited (:mod:`ledgerlink.web.inbound_limits`).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ledgerlink import connections
from ledgerlink.payments import inbox
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection
from ledgerlink.web.deps import InboundState, inbound_state
from ledgerlink.web.inbound_limits import Refusal
from ledgerlink.web.problems import Problem, problem_response, problem_responses

router = APIRouter(
    prefix="/inbound",
    tags=["inbound"],
    responses=problem_responses(400, 401, 404, 409, 413, 415, 422, 429),
)
MAX_BODY = 64 * 1024
#: The largest id a connection can have (the database's 64-bit integer).
MAX_ID = 2**63 - 1
ConnectionId = Annotated[
    int, Path(ge=1, le=MAX_ID, description="The PayTrace connection the events belong to.")
]
FORM = "application/x-www-form-urlencoded"


async def _paytrace(request: Request, state: InboundState, connection_id: int) -> Connection:
    """The PayTrace connection (remembered for a few seconds: a burst of events would
    otherwise read it once per event; read in the thread pool when it is not)."""
    connection = state.remembered(connection_id)
    if connection is not None:
        return connection
    if 1 <= connection_id <= MAX_ID:
        connection = await run_in_threadpool(_read_connection, state.runtime.db, connection_id)
    if connection is None or connection.kind != "paytrace":
        # Probing for connection ids counts against the address like any unsigned push.
        refusal = state.limits.from_address(_client(request))
        if refusal is not None:
            raise _over(refusal)
        raise Problem(404, "Not found", f"there is no PayTrace connection {connection_id}")
    state.remember(connection)
    return connection


def _read_connection(db: Database, connection_id: int) -> Connection | None:
    with db.read() as session:
        connection = session.get(Connection, connection_id)
        if connection is not None:
            session.expunge(connection)
        return connection


async def _body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it passes :data:`MAX_BODY` (whatever
    its content type, and before anything parses it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise _too_large()
    return bytes(body)


def _too_large() -> Problem:
    return Problem(413, "Too large", f"a push may have at most {MAX_BODY} bytes")


async def _form_fields(request: Request) -> dict[str, str]:
    """The posted form. PayTrace sends it URL-encoded: parsed from the body directly,
    which costs a fraction of the general form parser under a burst; a multipart form is
    accepted too, from the same capped body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await _body(request)
    if content_type == FORM:
        return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    if content_type != "multipart/form-data":
        raise Problem(
            415,
            "Unsupported content type",
            f"a silent post is a form ({FORM}), not {content_type or 'an untyped body'}",
        )

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=0, max_fields=100)
    except HTTPException as refused:  # malformed multipart, a file part, too many fields
        raise Problem(400, "Malformed form", str(refused.detail)) from None
    return {key: str(value) for key, value in form.items()}


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _over(refusal: Refusal) -> Problem:
    return Problem(
        429,
        "Too many requests",
        f"{refusal.what}; try again in {refusal.retry_after} s (PayTrace's exports are read "
        "regardless, so nothing is lost)",
        headers={"Retry-After": str(refusal.retry_after)},
    )


@router.post(
    "/paytrace/{connection_id}/silent-post",
    summary="PayTrace silent post (form): a hint, read back from PayTrace before anything "
    "is posted",
    response_class=PlainTextResponse,
)
async def silent_post(request: Request, connection_id: ConnectionId) -> Response:
    state = inbound_state(request)
    refusal = state.limits.from_address(_client(request))  # before any work, even a look-up
    if refusal is not None:
        raise _over(refusal)
    await _paytrace(request, state, connection_id)
    refusal = state.limits.for_connection(connection_id)
    if refusal is not None:
        raise _over(refusal)
    fields = await _form_fields(request)
    try:
        event = inbox.from_silent_post(fields, connection_id)
    except inbox.EventRefused as exc:
        raise Problem(
            400, "Event refused", exc.message, errors=[{"field": exc.field, "message": exc.message}]
        ) from None
    await state.writer.submit(event)
    return PlainTextResponse("OK")


@router.post(
    "/paytrace/{connection_id}/webhook",
    summary="Payment event signed with Standard Webhooks",
    responses={202: {"description": "Accepted: a new event", "content": {"application/json": {}}}},
)
async def webhook(request: Request, connection_id: ConnectionId) -> Response:
    state = inbound_state(request)
    connection = await _paytrace(request, state, connection_id)
    secret = connections.read_secret(state.runtime.vault, connection, "webhook_secret")
    if not secret:
        raise Problem(
            409,
            "Webhooks not set up",
            "this connection has no webhook secret; an administrator sets one under Accounting "
            "Integration → PayTrace before a source may push events",
        )
    body = await _body(request)
    try:
        parsed = Webhook(secret).verify(body, dict(request.headers))
    except WebhookVerificationError as exc:
        refusal = state.limits.from_address(_client(request))
        if refusal is not None:
            raise _over(refusal) from None
        raise Problem(
            401, "Signature refused", f"the webhook signature did not verify: {exc}"
        ) from None
    try:
        event = inbox.from_webhook(parsed, request.headers.get("webhook-id", ""), connection_id)
    except inbox.EventRefused as exc:
        raise Problem(
            400, "Event refused", exc.message, errors=[{"field": exc.field, "message": exc.message}]
        ) from None
    event_id, new = await state.writer.submit(event)
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
