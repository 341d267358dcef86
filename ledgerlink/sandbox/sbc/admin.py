"""Sandbox-only endpoints under ``/_sandbox`` for tests and demos.

* ``GET /_sandbox/state``: what the simulator holds (counts per business, live grants) and
  whether its answers are checked against the published schema (how many so far).
* ``POST /_sandbox/expire_tokens``: expire every access token now; with
  ``{"revoke_refresh_tokens": true}`` also revoke the refresh tokens, so the next refresh
  gets ``invalid_grant`` (what happens when a user disconnects the app at Sage).
* ``POST /_sandbox/reset_rate_limits``: forget the requests counted so far.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ledgerlink.sandbox.sbc import conformance
from ledgerlink.sandbox.sbc.api import COLLECTIONS, Api
from ledgerlink.sandbox.sbc.books import Books
from ledgerlink.sandbox.sbc.oauth import OAuthServer

Endpoint = Callable[[Request], Awaitable[Response]]


def endpoints(books: Books, oauth: OAuthServer, api: Api) -> dict[str, Endpoint]:
    async def state(request: Request) -> Response:
        businesses = {}
        for business in books.businesses():
            counts = {}
            for name, collection in COLLECTIONS.items():
                if collection.shared:
                    continue
                live = [r for r in books.store.all(business["id"], name) if not r.get("_deleted")]
                counts[name] = len(live)
            businesses[business["id"]] = {
                "name": business["name"],
                "lead": business["lead"],
                **counts,
            }
        return JSONResponse(
            {
                "businesses": businesses,
                "grants": oauth.summary(),
                "token_requests": oauth.counts,
                "schema_check": {"on": conformance.enabled(), "checked": conformance.checked()},
            }
        )

    async def expire_tokens(request: Request) -> Response:
        raw = await request.body()
        options = json.loads(raw) if raw.strip() else {}
        counts = oauth.expire(refresh_too=bool(options.get("revoke_refresh_tokens")))
        return JSONResponse(
            {"expired_access_tokens": counts["access"], "revoked_refresh_tokens": counts["refresh"]}
        )

    async def reset_rate_limits(request: Request) -> Response:
        api.limiter.reset()
        return JSONResponse({"reset": True})

    return {"state": state, "expire_tokens": expire_tokens, "reset_rate_limits": reset_rate_limits}
