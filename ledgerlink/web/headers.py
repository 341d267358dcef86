"""Security headers on every response, and ``Secure`` on every cookie sent over HTTPS.

This wraps the whole application (outside the inbound fast path and outside Starlette's
last-resort error handler), so portal pages, the API, static files, error pages, CSRF
refusals and push endpoints all answer with the same headers.

The Content-Security-Policy allows scripts and styles from ledgerlink itself only: the
portal has no inline scripts, inline styles or event-handler attributes, HTMX is told not
to inject its indicator styles (``htmx-config`` in base.html) and Swagger UI starts from a
static file. ``form-action`` is left open on purpose: *Connect to Sage* is a form whose
answer redirects to Sage's sign-in page, which browsers check against ``form-action``.

Whether a request came over HTTPS is read from the ASGI scope: uvicorn rewrites the scheme
from ``X-Forwarded-Proto`` only for peers listed in ``trusted_proxies``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)

#: Two years, the preload list's minimum; sent only on responses to HTTPS requests.
HSTS = "max-age=63072000"

_ALWAYS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


def came_over_https(scope: Scope) -> bool:
    return scope.get("scheme") in ("https", "wss")


class SecurityHeaders:
    """Adds the security headers to every HTTP response and marks cookies ``Secure`` when
    the request came over HTTPS (or ``secure_cookies`` forces it)."""

    def __init__(self, app: ASGIApp, *, force_secure_cookies: bool = False) -> None:
        self.app = app
        self.force_secure_cookies = force_secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = came_over_https(scope)
        secure_cookies = https or self.force_secure_cookies

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_security_headers(
                    list(message.get("headers", [])), https=https, secure_cookies=secure_cookies
                )
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _with_security_headers(
    headers: list[tuple[bytes, bytes]], *, https: bool, secure_cookies: bool
) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    out = [
        (name, _secure_cookie(value) if secure_cookies and name.lower() == b"set-cookie" else value)
        for name, value in headers
    ]
    out += [(name, value) for name, value in _ALWAYS if name not in present]
    if https and b"strict-transport-security" not in present:
        out.append((b"strict-transport-security", HSTS.encode()))
    return out


def _secure_cookie(value: bytes) -> bytes:
    attributes = [part.strip().lower() for part in value.split(b";")[1:]]
    return value if b"secure" in attributes else value + b"; Secure"
