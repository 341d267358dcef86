"""Errors as RFC 9457 ``application/problem+json``, naming the fields that were wrong.

Every error the API returns has the same shape, so scripts can rely on it:
``{"type", "title", "status", "detail", "errors": [{"field", "message"}]}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://ledgerlink.dev/problems/"


class Problem(Exception):
    """Raise from any route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        kind: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.errors = errors or []
        self.headers = headers


def field_problem(field: str, message: str, *, status: int = 422) -> Problem:
    return Problem(
        status,
        "Invalid request",
        f"{field}: {message}",
        kind="validation",
        errors=[{"field": field, "message": message}],
    )


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + problem.kind,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail or problem.title,
    }
    if instance:
        body["instance"] = instance
    if problem.errors:
        body["errors"] = problem.errors
    return JSONResponse(
        body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    """``("body", "user", "email")`` → ``"user.email"``; query/path params keep their name."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:] or parts
    return ".".join(parts)


def validation_problem(exc: RequestValidationError) -> Problem:
    errors = [
        {"field": _field_path(tuple(err.get("loc", ()))), "message": str(err.get("msg", ""))}
        for err in exc.errors()
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return Problem(422, "Invalid request", summary, kind="validation", errors=errors)


def http_problem(exc: StarletteHTTPException) -> Problem:
    titles = {
        401: "Not signed in",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        429: "Too many requests",
    }
    title = titles.get(exc.status_code, "Request failed")
    detail = exc.detail if isinstance(exc.detail, str) else title
    return Problem(exc.status_code, title, detail, headers=getattr(exc, "headers", None))


def internal_problem(request: Request) -> Problem:
    request_id = request.headers.get("x-request-id", "")
    return Problem(
        500,
        "Internal error",
        "ledgerlink hit an unexpected error; nothing was changed by this request. "
        "The event is in the server log"
        + (f" under request id {request_id}." if request_id else "."),
    )
