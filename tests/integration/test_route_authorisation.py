"""Every route of the app is walked: anonymous callers are refused everywhere but the
public routes, and a viewer can change nothing."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from ledgerlink.identity.roles import Role
from ledgerlink.store.db import Database
from ledgerlink.web.security import PUBLIC_PATHS
from tests.support.web import make_user, sign_in

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
#: Routes every signed-in user may POST to because they only touch the caller's own
#: session, credentials or guided tour.
SELF_SERVICE = {"/logout", "/account/password", "/api/v1/me/password"}
SELF_SERVICE |= {"/tour/here", "/tour/done", "/tour/dismiss", "/tour/restart"}


def _routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    found = []
    for route in iter_route_contexts(app.routes):  # follows included routers
        if route.path and route.methods:
            path = re.sub(r"\{[^}]+\}", "1", route.path)
            for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                found.append((method, path))
    assert len(found) > 15, "the walk must see the whole app"
    return found


def _is_public(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PUBLIC_PATHS)


def _send(client: TestClient, method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
    if path.startswith("/api/"):
        return client.request(
            method, path, json={} if method in UNSAFE else None, follow_redirects=False, **kwargs
        )
    return client.request(
        method, path, data={} if method in UNSAFE else None, follow_redirects=False, **kwargs
    )


def test_anonymous_callers_are_refused_on_every_non_public_route(app, client) -> None:
    for method, path in _routes(app):
        if _is_public(path):
            continue
        response = _send(client, method, path)
        if path.startswith("/api/") or path == "/metrics":
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
        elif method == "GET":
            assert response.status_code == 303, (method, path)
            assert response.headers["location"].startswith("/login?next=")
        else:
            assert response.status_code in (401, 403), (method, path, response.status_code)


def test_a_viewer_token_cannot_change_anything_through_the_api(app, client, db: Database) -> None:
    viewer = make_user(db, Role.VIEWER)
    headers = {"Authorization": f"Bearer {viewer.token}"}
    for method, path in _routes(app):
        if method not in UNSAFE or not path.startswith("/api/") or path in SELF_SERVICE:
            continue
        response = _send(client, method, path, headers=headers)
        assert response.status_code == 403, (method, path, response.status_code, response.text)


def test_a_signed_in_viewer_cannot_change_anything_through_the_portal(
    app, client, db: Database
) -> None:
    viewer = make_user(db, Role.VIEWER)
    csrf = sign_in(client, viewer.email)
    for method, path in _routes(app):
        if method not in UNSAFE or path.startswith("/api/") or _is_public(path):
            continue
        if path in SELF_SERVICE:
            continue
        response = client.request(method, path, data={"csrftoken": csrf}, follow_redirects=False)
        # 403 from the role check, not from CSRF: the form carried a valid token.
        assert response.status_code == 403, (method, path, response.status_code)
        assert "needs the" in response.text


def test_portal_api_calls_with_a_session_cookie_are_also_role_checked(
    app, client, db: Database
) -> None:
    viewer = make_user(db, Role.VIEWER)
    csrf = sign_in(client, viewer.email)
    response = client.post("/api/v1/users", json={}, headers={"x-csrftoken": csrf})
    assert response.status_code == 403


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/login"])
def test_public_routes_answer_anonymously(client, path: str) -> None:
    assert client.get(path).status_code == 200


def test_every_route_declares_a_role_or_is_public(app) -> None:
    """Guards future routes: one without a role dependency fails here before it ships."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or _is_public(context.path):
            continue
        names = {d.call.__name__ for d in route.dependant.dependencies if d.call}
        names |= {
            sub.call.__name__
            for d in route.dependant.dependencies
            for sub in d.dependencies
            if sub.call
        }
        assert names & {"require_viewer", "require_operator", "require_admin"}, route.path
