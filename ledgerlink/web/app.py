"""The FastAPI application factory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

import structlog
from asgi_csrf import asgi_csrf
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledgerlink import __version__
from ledgerlink.connectors.previews import register_all as register_preview_sources
from ledgerlink.jobs.embedded import EmbeddedRunner
from ledgerlink.runtime import Runtime
from ledgerlink.settings import Settings
from ledgerlink.web import inbound
from ledgerlink.web.deps import viewer
from ledgerlink.web.domain_problems import handled_types, page_error, problem_for
from ledgerlink.web.headers import SecurityHeaders
from ledgerlink.web.metrics import MetricsMiddleware
from ledgerlink.web.portal.rendering import render_error
from ledgerlink.web.problems import (
    Problem,
    database_unavailable_problem,
    http_problem,
    internal_problem,
    problem_response,
    unstorable_problem,
    validation_problem,
)
from ledgerlink.web.routes import application_routes
from ledgerlink.web.security import NotSignedIn

log = structlog.get_logger("ledgerlink.web")
STATIC_DIR = Path(__file__).parent / "portal" / "static"


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime(settings or Settings())
    register_preview_sources()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner = None
        if runtime.settings.job_backend == "embedded" and runtime.settings.run_embedded_worker:
            runner = EmbeddedRunner(runtime.settings, runtime.db)
            runner.start()
        app.state.embedded_runner = runner
        log.info(
            "web.started",
            version=__version__,
            database=runtime.db.backend,
            jobs=runtime.settings.job_backend,
            embedded_runner=runner is not None,
        )
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()
            runtime.close()

    app = _App(
        title="ledgerlink",
        version=__version__,
        summary="Member registry, Sage and PayTrace kept in agreement.",
        docs_url=None,  # served below, behind sign-in, with vendored Swagger UI assets
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.db = runtime.db
    app.force_secure_cookies = runtime.settings.secure_cookies
    app.state.embedded_runner = None

    app.router.routes.extend(application_routes())  # built once per process: routes.py
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_api_docs(app)
    _install_error_handlers(app)

    # Innermost first: asgi-csrf hands a copied scope inwards, so metrics must sit inside
    # it to see which route answered.
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(
        CSRFMiddleware,
        signing_secret=runtime.vault.derive_secret("csrf").hex(),
        secure=runtime.settings.secure_cookies,
    )
    app.add_middleware(RequestContextMiddleware)
    return app


class _App(FastAPI):
    """The application, wrapped in the security headers outside everything else (the
    inbound push routes and Starlette's last-resort error handler included), so that every
    response carries them."""

    force_secure_cookies = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # The shared routes (web/routes.py) do not consult this application's overrides:
        # read-only, so that setting one fails loudly instead of being silently ignored.
        self.dependency_overrides = MappingProxyType({})  # type: ignore[assignment]

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(
            super().build_middleware_stack(), force_secure_cookies=self.force_secure_cookies
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if inbound.is_push(scope):  # push sources skip everything else (inbound.py says why)
            scope["app"] = self
            answer = SecurityHeaders(
                inbound.answer_push, force_secure_cookies=self.force_secure_cookies
            )
            await answer(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _install_api_docs(app: FastAPI) -> None:
    """OpenAPI document and Swagger UI for signed-in users; assets are served locally so
    the docs work on sites without internet access."""

    @app.get("/api/v1/openapi.json", include_in_schema=False, dependencies=[Depends(viewer)])
    def openapi_document() -> dict[str, Any]:
        return app.openapi()

    @app.get("/api/docs", include_in_schema=False, dependencies=[Depends(viewer)])
    def api_docs() -> HTMLResponse:
        return HTMLResponse(_API_DOCS_PAGE)


#: Swagger UI started by a static script (the Content-Security-Policy allows no inline
#: script); the document's address travels in a data attribute.
_API_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>ledgerlink API</title>
  <link rel="icon" href="/static/favicon.svg">
  <link rel="stylesheet" href="/static/swagger/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="/api/v1/openapi.json"></div>
  <script src="/static/swagger/swagger-ui-bundle.js"></script>
  <script src="/static/swagger/start.js"></script>
</body>
</html>
"""


def _is_api(request: Request) -> bool:
    """Machine callers get problem+json; people get the portal's error page."""
    path = request.url.path
    return path.startswith(("/api/", "/inbound/")) or path == "/metrics"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, _exc: NotSignedIn) -> Response:
        if _is_api(request):
            return problem_response(
                Problem(
                    401,
                    "Not signed in",
                    "Send an API token as 'Authorization: Bearer llk_…' "
                    "(an administrator creates one under Settings → API tokens).",
                    headers={"WWW-Authenticate": "Bearer"},
                ),
                request.url.path,
            )
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)
        return render_error(request, 401, "Your session has ended. Sign in again.")

    @app.exception_handler(Problem)
    async def problem(request: Request, exc: Problem) -> Response:
        if _is_api(request):
            return problem_response(exc, request.url.path)
        return render_error(request, exc.status, exc.detail or exc.title)

    async def domain_error(request: Request, exc: Exception) -> Response:
        # A use case's refusal or an upstream failure (web/domain_problems.py): routes
        # raise them and this answers, so every route says the same thing for the same error.
        if _is_api(request):
            return problem_response(problem_for(exc), request.url.path)
        status, message = page_error(exc)
        return render_error(request, status, message)

    for error_type in handled_types():
        app.add_exception_handler(error_type, domain_error)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        found = validation_problem(exc)
        if _is_api(request):
            return problem_response(found, request.url.path)
        return render_error(request, 422, found.detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        found = http_problem(exc)
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; list them all
            found.headers = {**(found.headers or {}), "Allow": _allowed_methods(app, request)}
        if _is_api(request):
            return problem_response(found, request.url.path)
        page = render_error(request, exc.status_code, found.detail)
        page.headers.update(found.headers or {})
        return page

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: Exception) -> Response:
        # The last line of defence for input no route bounded (a portal form, a path id):
        # the database refused a value (an integer beyond 64 bits, NUL in text) and the
        # transaction was rolled back. A 422 that says so, not a 500.
        log.warning("web.unstorable_input", path=request.url.path, error=type(exc).__name__)
        found = unstorable_problem()
        if _is_api(request):
            return problem_response(found, request.url.path)
        return render_error(request, 422, found.detail)

    @app.exception_handler(OperationalError)
    async def database_unavailable(request: Request, exc: OperationalError) -> Response:
        log.warning("web.database_unavailable", path=request.url.path, error=str(exc.orig)[:300])
        found = database_unavailable_problem()
        if _is_api(request):
            return problem_response(found, request.url.path)
        return render_error(request, 503, found.detail)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("web.unhandled_error", path=request.url.path)
        found = internal_problem(request)
        if _is_api(request):
            return problem_response(found, request.url.path)
        return render_error(request, 500, found.detail)


def _allowed_methods(app: FastAPI, request: Request) -> str:
    """The methods some route answers at this request's path (for a 405's Allow header)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _quote(value: str) -> str:
    return quote(value, safe="/")


class CSRFMiddleware:
    """Double-submit-cookie CSRF protection (asgi-csrf) for every unsafe request that
    carries cookies. API calls with a bearer token are exempt: browsers never attach
    those on their own. The login form is protected too (login CSRF)."""

    def __init__(self, app: ASGIApp, *, signing_secret: str, secure: bool):
        self.app = asgi_csrf(
            _restore_content_type(app),
            signing_secret=signing_secret,
            always_protect={"/login"},
            # Push sources authenticate each delivery (signature or read-back) and never act
            # for a browser user, so cookie-based CSRF does not apply to them.
            skip_if_scope=lambda scope: str(scope.get("path", "")).startswith("/inbound/"),
            cookie_secure=secure,
            cookie_samesite="Lax",
            send_csrf_failed=_csrf_failed,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _form_needs_token(scope):
            token, receive = await _multipart_token(scope, receive)
            if token is None:
                await _csrf_failed(scope, send)
                return
            # Hide the multipart content type from asgi-csrf (it would try to parse the
            # body with the removed API): a matching header passes, anything else is
            # refused as an unknown content type. The app gets the real type back.
            headers = [h for h in scope["headers"] if h[0] != b"content-type"]
            original = dict(scope["headers"])[b"content-type"]
            headers += [(b"content-type", _HIDDEN_MULTIPART), (b"x-csrftoken", token)]
            scope = {**scope, "headers": headers, _ORIGINAL_CONTENT_TYPE: original}
        await self.app(scope, receive, send)


class _TokenFound(Exception):
    pass


_HIDDEN_MULTIPART = b"application/x-ledgerlink-multipart"
_ORIGINAL_CONTENT_TYPE = "ledgerlink.original_content_type"


def _restore_content_type(app: ASGIApp) -> ASGIApp:
    async def restored(scope: Scope, receive: Receive, send: Send) -> None:
        original = scope.get(_ORIGINAL_CONTENT_TYPE)
        if original is not None:
            headers = [h for h in scope["headers"] if h[0] != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", original)]}
        await app(scope, receive, send)

    return restored


def _form_needs_token(scope: Scope) -> bool:
    """A cookie-authenticated multipart form post (bearer API calls need no CSRF token)."""
    if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS", "TRACE"}:
        return False
    headers = dict(scope.get("headers", ()))
    content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip()
    bearer = headers.get(b"authorization", b"").startswith(b"Bearer ")
    return content_type == b"multipart/form-data" and b"cookie" in headers and not bearer


async def _multipart_token(scope: Scope, receive: Receive) -> tuple[bytes | None, Receive]:
    """Find the ``csrftoken`` field of a multipart form, to be presented as the
    ``x-csrftoken`` header, which asgi-csrf then checks as usual.

    asgi-csrf's own multipart parsing uses a python-multipart API removed in 0.0.26
    (simonw/asgi-csrf#38); pinning the older python-multipart would bring back
    CVE-2026-40347. The check itself stays asgi-csrf's; this only moves the token.
    Our forms put the hidden ``csrftoken`` input first, so the body is read only up to it.
    """
    from python_multipart.multipart import FormParser

    boundary = b""
    for name, value in scope.get("headers", ()):
        if name == b"content-type" and b"boundary=" in value:
            boundary = value.split(b"boundary=", 1)[1].split(b";", 1)[0].strip(b'"')
    messages: list[Message] = []

    def on_field(field: Any) -> None:
        if field.field_name == b"csrftoken" and field.value:
            raise _TokenFound(field.value)

    token: bytes | None = None
    if boundary:
        parser = FormParser("multipart/form-data", on_field, lambda _file: None, boundary=boundary)
        more = True
        try:
            while more:
                message = await receive()
                messages.append(message)
                parser.write(message.get("body", b""))
                more = message.get("more_body", False)
        except _TokenFound as found:
            token = bytes(found.args[0])
        except Exception:  # a malformed body: asgi-csrf will refuse it without a token
            token = None

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return token, replay


async def _csrf_failed(scope: Scope, send: Send, message_id: Any = None) -> None:
    path = scope.get("path", "")
    if path.startswith("/api/"):
        body = (
            b'{"type":"https://ledgerlink.dev/problems/csrf","title":"Forbidden","status":403,'
            b'"detail":"The request had no valid CSRF token. Send the csrftoken cookie value '
            b'in the x-csrftoken header, or use a bearer API token."}'
        )
        content_type = b"application/problem+json"
    else:
        body = (
            b"<!doctype html><title>Form expired</title><p>This form had expired or did not "
            b"come from ledgerlink. Go back, reload the page and submit it again.</p>"
        )
        content_type = b"text/html; charset=utf-8"
    await send(
        {"type": "http.response.start", "status": 403, "headers": [(b"content-type", content_type)]}
    )
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Gives every request an id (echoed back as ``x-request-id``) bound into its logs."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _plausible_id(incoming) else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")


def _plausible_id(value: str) -> bool:
    return 8 <= len(value) <= 64 and all(c.isalnum() or c in "-_" for c in value)
