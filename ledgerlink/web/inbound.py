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

import re
import weakref
from typing import Annotated, Any
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from ledgerlink import connections
from ledgerlink.payments import inbox
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection
from ledgerlink.web.deps import InboundState, inbound_state
from ledgerlink.web.inbound_limits import Refusal
from ledgerlink.web.problems import (
    Problem,
    database_unavailable_problem,
    internal_problem,
    problem_response,
    problem_responses,
    unstorable_problem,
)

log = structlog.get_logger("ledgerlink.web")

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


class Push:
    """One delivery as the push routes read it, straight from the ASGI scope: the fast
    path answers without building a Starlette request (its header and stream machinery
    costs more than everything these routes do with it)."""

    __slots__ = ("_headers", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Header names in lower case; of a repeated header, the first."""
        if self._headers is None:
            found: dict[str, str] = {}
            for name, value in self.scope["headers"]:
                found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
            self._headers = found
        return self._headers

    @property
    def client(self) -> str:
        client = self.scope.get("client")
        return str(client[0]) if client else ""

    @property
    def path(self) -> str:
        return str(self.scope.get("path", ""))

    async def body(self) -> bytes:
        """The body, refused with 413 as soon as it passes :data:`MAX_BODY` (whatever its
        content type, and before anything parses it)."""
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise _too_large()
        body = b""
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            body += bytes(message.get("body", b""))
            if len(body) > MAX_BODY:
                raise _too_large()
            if not message.get("more_body", False):
                return body


async def _paytrace(push: Push, state: InboundState, connection_id: int) -> Connection:
    """The PayTrace connection (remembered for a few seconds: a burst of events would
    otherwise read it once per event; read in the thread pool when it is not)."""
    connection = state.remembered(connection_id)
    if connection is not None:
        return connection
    if 1 <= connection_id <= MAX_ID:
        connection = await run_in_threadpool(_read_connection, state.runtime.db, connection_id)
    if connection is None or connection.kind != "paytrace":
        # Probing for connection ids counts against the address like any unsigned push.
        refusal = state.limits.from_address(push.client)
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


#: The webhook verifier of each remembered connection (so the secret is decrypted once
#: while the connection is remembered, not once a delivery); it goes with the connection.
_VERIFIERS: weakref.WeakKeyDictionary[Connection, Webhook | None] = weakref.WeakKeyDictionary()


def _verifier(state: InboundState, connection: Connection) -> Webhook | None:
    try:
        return _VERIFIERS[connection]
    except KeyError:
        pass
    secret = connections.read_secret(state.runtime.vault, connection, "webhook_secret")
    verifier = _VERIFIERS[connection] = Webhook(secret) if secret else None
    return verifier


def _too_large() -> Problem:
    return Problem(413, "Too large", f"a push may have at most {MAX_BODY} bytes")


async def _form_fields(push: Push) -> dict[str, str]:
    """The posted form. PayTrace sends it URL-encoded: parsed from the body directly,
    which costs a fraction of the general form parser under a burst; a multipart form is
    accepted too, from the same capped body."""
    content_type = push.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await push.body()
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
        form = await Request(push.scope, replay).form(max_files=0, max_fields=100)
    except HTTPException as refused:  # malformed multipart, a file part, too many fields
        raise Problem(400, "Malformed form", str(refused.detail)) from None
    return {key: str(value) for key, value in form.items()}


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
    return await _silent_post(
        Push(request.scope, request.receive), inbound_state(request), connection_id
    )


@router.post(
    "/paytrace/{connection_id}/webhook",
    summary="Payment event signed with Standard Webhooks",
    responses={202: {"description": "Accepted: a new event", "content": {"application/json": {}}}},
)
async def webhook(request: Request, connection_id: ConnectionId) -> Response:
    return await _webhook(
        Push(request.scope, request.receive), inbound_state(request), connection_id
    )


#: The answer to an accepted silent post (one object: it is the same every time).
_OK = PlainTextResponse("OK")


async def _silent_post(push: Push, state: InboundState, connection_id: int) -> Response:
    refusal = state.limits.from_address(push.client)  # before any work, even a look-up
    if refusal is not None:
        raise _over(refusal)
    await _paytrace(push, state, connection_id)
    refusal = state.limits.for_connection(connection_id)
    if refusal is not None:
        raise _over(refusal)
    fields = await _form_fields(push)
    try:
        event = inbox.from_silent_post(fields, connection_id)
    except inbox.EventRefused as exc:
        raise _refused(exc) from None
    await state.writer.submit(event)
    return _OK


async def _webhook(push: Push, state: InboundState, connection_id: int) -> Response:
    connection = await _paytrace(push, state, connection_id)
    verifier = _verifier(state, connection)
    if verifier is None:
        raise Problem(
            409,
            "Webhooks not set up",
            "this connection has no webhook secret; an administrator sets one under Accounting "
            "Integration → PayTrace before a source may push events",
        )
    body = await push.body()
    try:
        parsed = verifier.verify(body, push.headers)
    except WebhookVerificationError as exc:
        refusal = state.limits.from_address(push.client)
        if refusal is not None:
            raise _over(refusal) from None
        raise Problem(
            401, "Signature refused", f"the webhook signature did not verify: {exc}"
        ) from None
    try:
        event = inbox.from_webhook(parsed, push.headers.get("webhook-id", ""), connection_id)
    except inbox.EventRefused as exc:
        raise _refused(exc) from None
    event_id, new = await state.writer.submit(event)
    return JSONResponse(
        {"accepted": True, "duplicate": not new, "event_id": event_id}, 202 if new else 200
    )


def _refused(exc: inbox.EventRefused) -> Problem:
    return Problem(
        400, "Event refused", exc.message, errors=[{"field": exc.field, "message": exc.message}]
    )


#: ``/inbound/paytrace/<id>/<route>``, as the routes above declare them.
_PUSH_PATH = re.compile(r"/inbound/paytrace/([0-9]+)/(silent-post|webhook)")
_HANDLERS = {"silent-post": _silent_post, "webhook": _webhook}


def is_push(scope: Scope) -> bool:
    """Whether this request is a delivery to a push route (``POST /inbound/paytrace/<id>/
    silent-post`` or ``…/webhook``): the app hands those to :func:`answer_push` before
    anything else.

    Push sources send bursts and need none of what other requests go through (FastAPI's
    per-request telemetry check, sessions, CSRF, metrics, request ids, routing, validation
    and error middleware); each layer costs per request. The routes stay registered with
    the app (documentation, route checks, other methods' 405); this only answers them
    sooner, with the same checks and the same answers."""
    return (
        scope["type"] == "http"
        and scope["method"] == "POST"
        and _PUSH_PATH.fullmatch(_route_path(scope)) is not None
    )


def _route_path(scope: Scope) -> str:
    """The path below the app's root path (as Starlette's routing matches it)."""
    path = str(scope["path"])
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


async def answer_push(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a delivery :func:`is_push` recognised. A refusal, input the database cannot
    store and an unexpected error answer as the app's own handlers would (problem
    documents)."""
    found = _PUSH_PATH.fullmatch(_route_path(scope))
    assert found is not None, "answer_push is only called for what is_push recognised"
    push = Push(scope, receive)
    try:
        handler = _HANDLERS[found[2]]
        response: Response = await handler(push, inbound_state(Request(scope)), int(found[1]))
    except Problem as problem:
        response = problem_response(problem, push.path)
    except ClientDisconnect:
        return  # nobody is waiting for an answer
    except (DataError, OverflowError) as exc:
        log.warning("web.unstorable_input", path=push.path, error=type(exc).__name__)
        response = problem_response(unstorable_problem(), push.path)
    except OperationalError as exc:
        log.warning("web.database_unavailable", path=push.path, error=str(exc.orig)[:300])
        response = problem_response(database_unavailable_problem(), push.path)
    except Exception:
        log.exception("web.unhandled_error", path=push.path)
        response = problem_response(internal_problem(Request(scope)), push.path)
    await response(scope, receive, send)
