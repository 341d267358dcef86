"""Sage's OAuth 2.0 authorization-code flow, as the API notes describe it.

* ``GET /oauth2/auth/central?...`` shows a consent page (or approves at once with
  ``auto_approve``) and redirects to the app's callback with a code and the ``state``.
* ``POST /token`` (form-encoded) exchanges a code (60 s, single use) or a refresh token
  for an access token (300 s by default) and a *new* refresh token: the refresh token
  rotates on every use and the old one dies at once. Anything wrong with a code or a
  refresh token is ``400 {"error": "invalid_grant"}``.
"""

from __future__ import annotations

import html
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.sandbox.sbc.config import SbcConfig
from ledgerlink.sandbox.sbc.errors import unauthorised
from ledgerlink.sandbox.sbc.store import Record, Store

AUTHORIZE_PATH = "/oauth2/auth/central"
TOKEN_PATH = "/token"  # noqa: S105 - a path, not a secret
#: The one user of the sandbox account; Sage returns its id as ``requested_by_id``.
USER_ID = "5b0e5ca5a8f54a6b9f0d0c1e0a11ce00"


class OAuthServer:
    def __init__(self, store: Store, config: SbcConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.config = config
        #: Codes and tokens expire on this clock (tests move it instead of sleeping).
        self.clock = clock
        #: Token requests since start, by grant type and outcome (for tests and the demo).
        self.counts: dict[str, int] = {}

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def routes(self) -> list[Route]:
        return [
            Route(AUTHORIZE_PATH, self.authorize, methods=["GET"]),
            Route(f"{AUTHORIZE_PATH}/decision", self.decide, methods=["POST"]),
            Route(TOKEN_PATH, self.token, methods=["POST"]),
        ]

    # -- bearer tokens on API calls --------------------------------------------------------

    def check_bearer(self, header: str | None) -> Record:
        """The grant behind ``Authorization: Bearer …``, or a 401 in SBC's words."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorised("Missing access token: send Authorization: Bearer <token>")
        grant = self.store.grant(token.strip())
        if grant is None or grant["kind"] != "access":
            raise unauthorised("The access token is invalid")
        if grant["expires_at"] <= self._now():
            raise unauthorised("The access token has expired")
        return grant

    # -- consent ---------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        problem = self._authorize_problem(query.get("client_id"), query.get("redirect_uri"))
        if problem:
            # Never redirect to an unverified callback: show the error instead.
            return HTMLResponse(_page("Sign-in problem", f"<p>{html.escape(problem)}</p>"), 400)
        redirect_uri = str(query["redirect_uri"])
        state = query.get("state", "")
        if query.get("response_type") != "code":
            return _back(redirect_uri, {"error": "unsupported_response_type", "state": state})
        scope = query.get("scope") or "full_access"
        if scope not in ("full_access", "readonly"):
            return _back(redirect_uri, {"error": "invalid_scope", "state": state})
        if self.config.auto_approve:
            return _back(
                redirect_uri, {"code": self._issue_code(redirect_uri, scope), "state": state}
            )
        fields = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in (("redirect_uri", redirect_uri), ("state", state), ("scope", scope))
        )
        body = (
            "<p>The application <strong>"
            f"{html.escape(self.config.client_id)}</strong> asks for "
            f"<strong>{'full access' if scope == 'full_access' else 'read-only access'}</strong> "
            "to your Sage Business Cloud Accounting businesses (sandbox).</p>"
            f'<form method="post" action="{AUTHORIZE_PATH}/decision">{fields}'
            '<button name="decision" value="allow" type="submit">Allow</button> '
            '<button name="decision" value="deny" type="submit">Deny</button></form>'
        )
        return HTMLResponse(_page("Allow access to Sage Accounting?", body))

    async def decide(self, request: Request) -> Response:
        form = await request.form()
        redirect_uri = str(form.get("redirect_uri") or "")
        problem = self._authorize_problem(self.config.client_id, redirect_uri)
        if problem:
            return HTMLResponse(_page("Sign-in problem", f"<p>{html.escape(problem)}</p>"), 400)
        state = str(form.get("state") or "")
        if form.get("decision") != "allow":
            return _back(redirect_uri, {"error": "access_denied", "state": state})
        code = self._issue_code(redirect_uri, str(form.get("scope") or "full_access"))
        return _back(redirect_uri, {"code": code, "state": state})

    def _authorize_problem(self, client_id: str | None, redirect_uri: str | None) -> str | None:
        if client_id != self.config.client_id:
            return "Unknown client_id: check the client id of your Sage app registration."
        if not redirect_uri:
            return "redirect_uri is missing."
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return "redirect_uri must be an absolute http(s) URL."
        if self.config.redirect_uris and redirect_uri not in self.config.redirect_uris:
            return "redirect_uri is not one of the app's registered callback URLs."
        return None

    def _issue_code(self, redirect_uri: str, scope: str) -> str:
        code = secrets.token_urlsafe(24)
        self.store.put_grant(
            code,
            {
                "kind": "code",
                "redirect_uri": redirect_uri,
                "scope": scope,
                "expires_at": self._now() + self.config.code_lifetime_seconds,
            },
        )
        return code

    # -- token endpoint ---------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return _oauth_error("invalid_request", "send the parameters form-encoded", 400)
        form = await request.form()
        params = {k: str(v) for k, v in form.items()}
        if (
            params.get("client_id") != self.config.client_id
            or params.get("client_secret") != self.config.client_secret
        ):
            return _oauth_error("invalid_client", "client authentication failed", 401)
        grant_type = params.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(params)
        if grant_type == "refresh_token":
            return self._refresh(params)
        return _oauth_error(
            "unsupported_grant_type", "use authorization_code or refresh_token", 400
        )

    def _exchange_code(self, params: dict[str, str]) -> Response:
        code = params.get("code", "")
        grant = self.store.grant(code)
        if grant is None or grant["kind"] != "code":
            return self._invalid_grant()
        self.store.drop_grant(code)  # single use, even when the exchange then fails
        if grant["expires_at"] <= self._now() or grant["redirect_uri"] != params.get(
            "redirect_uri"
        ):
            return self._invalid_grant()
        self._count("authorization_code")
        return self._issue_tokens(grant["scope"])

    def _refresh(self, params: dict[str, str]) -> Response:
        token = params.get("refresh_token", "")
        grant = self.store.grant(token)
        if grant is None or grant["kind"] != "refresh" or grant["expires_at"] <= self._now():
            return self._invalid_grant()
        self.store.drop_grant(token)  # rotation: the old refresh token dies now
        self._count("refresh_token")
        return self._issue_tokens(grant["scope"])

    def _invalid_grant(self) -> JSONResponse:
        self._count("invalid_grant")
        return JSONResponse({"error": "invalid_grant"}, 400)

    def _issue_tokens(self, scope: str) -> Response:
        now = self._now()
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.store.unit():
            self._sweep(now)
            self.store.put_grant(
                access,
                {
                    "kind": "access",
                    "scope": scope,
                    "expires_at": now + self.config.token_lifetime_seconds,
                },
            )
            self.store.put_grant(
                refresh,
                {
                    "kind": "refresh",
                    "scope": scope,
                    "expires_at": now + self.config.refresh_token_lifetime_seconds,
                },
            )
        return JSONResponse(
            {
                "access_token": access,
                "expires_in": self.config.token_lifetime_seconds,
                "token_type": "bearer",
                "refresh_token": refresh,
                "refresh_token_expires_in": self.config.refresh_token_lifetime_seconds,
                "scope": scope,
                "requested_by_id": USER_ID,
            },
            headers={"Cache-Control": "no-store"},
        )

    def _sweep(self, now: float) -> None:
        """Forget grants that died more than a day ago, so the file does not grow forever."""
        for token, grant in self.store.grant_items():
            if grant["expires_at"] < now - 86_400:
                self.store.drop_grant(token)

    # -- sandbox admin ----------------------------------------------------------------------

    def expire(self, *, refresh_too: bool) -> dict[str, int]:
        """Expire every access token (and, optionally, revoke every refresh token)."""
        counts = {"access": 0, "refresh": 0}
        with self.store.unit():
            for token, grant in self.store.grant_items():
                if grant["kind"] == "access" and grant["expires_at"] > self._now():
                    self.store.put_grant(token, {**grant, "expires_at": self._now() - 1})
                    counts["access"] += 1
                elif grant["kind"] == "refresh" and refresh_too:
                    self.store.drop_grant(token)
                    counts["refresh"] += 1
        return counts

    def summary(self) -> dict[str, Any]:
        now = self._now()
        live: dict[str, int] = {}
        for _, grant in self.store.grant_items():
            if grant["expires_at"] > now:
                live[grant["kind"]] = live.get(grant["kind"], 0) + 1
        return live


def _back(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
    separator = "&" if "?" in redirect_uri else "?"
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302)


def _oauth_error(error: str, description: str, status: int) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
        "</title></head><body><main><p><em>Sage Business Cloud Accounting — ledgerlink "
        f"sandbox</em></p><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
