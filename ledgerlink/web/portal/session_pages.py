"""Signing in and out of the portal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ledgerlink.identity import login
from ledgerlink.web.deps import DatabaseDep, MaybePrincipal, RuntimeDep, Viewer
from ledgerlink.web.portal.rendering import render
from ledgerlink.web.security import SESSION_COOKIE

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect after login would help phishing."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


@router.get("/login")
def login_page(
    request: Request, principal: MaybePrincipal, next: str = "/", signed_out: bool = False
) -> Response:
    if principal is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", next=_safe_next(next), signed_out=signed_out)


@router.post("/login")
def login_submit(
    request: Request,
    runtime: RuntimeDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    client_ip = request.client.host if request.client else None
    refused: login.LoginRefused | None = None
    with runtime.db.transaction() as session:
        try:
            opened = login.authenticate(
                session, runtime.settings, email=email, password=password, client_ip=client_ip
            )
        except login.LoginRefused as exc:
            refused = exc  # caught inside the transaction so the attempt is recorded
    if refused is not None:
        status = 429 if refused.throttled else 401
        response = render(
            request,
            "login.html",
            status_code=status,
            error=refused.message,
            email=email,
            next=_safe_next(next),
        )
        if refused.retry_after:
            response.headers["Retry-After"] = str(refused.retry_after)
        return response
    redirect = RedirectResponse(_safe_next(next), status_code=303)
    redirect.set_cookie(
        SESSION_COOKIE,
        opened.token,
        max_age=runtime.settings.session_hours * 3600,
        httponly=True,
        samesite="lax",
        # Also added for any HTTPS request by web/headers.py; said here too for the reader.
        secure=runtime.settings.secure_cookies or request.url.scheme == "https",
    )
    return redirect


@router.post("/logout")
def logout(request: Request, _: Viewer, db: DatabaseDep) -> Response:
    if cookie := request.cookies.get(SESSION_COOKIE):
        with db.transaction() as session:
            login.end_session(session, cookie)
    response = RedirectResponse("/login?signed_out=true", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
