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


def _validation_error(err: dict[str, Any]) -> dict[str, str]:
    field = _field_path(tuple(err.get("loc", ())))
    context = err.get("ctx") or {}
    if err.get("type") == "control_character" and context.get("path"):
        # a nested JSON field (connection settings): name it, not only the object
        return {"field": f"{field}.{context['path']}", "message": str(context["problem"])}
    return {"field": field, "message": str(err.get("msg", ""))}


def validation_problem(exc: RequestValidationError) -> Problem:
    errors = [_validation_error(err) for err in exc.errors()]
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


#: The JSON schema of a problem document, for the OpenAPI description.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Each field that was wrong and why (CSV imports and mapping "
            "specs add the line and file).",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_DESCRIPTIONS = {
    400: "The request could not be read (malformed body or form)",
    401: "Not signed in: send 'Authorization: Bearer llk_…'",
    403: "Your role does not allow this, or a browser request had no CSRF token",
    404: "No such record",
    405: "Method not allowed (the Allow header lists those that are)",
    409: "Conflicts with the current state (said in detail)",
    413: "The upload is too large",
    422: "Invalid input; errors name each field and the fix",
    428: "A required precondition header is missing",
    429: "Too many requests; wait for Retry-After seconds",
    502: "The upstream system (ledger or gateway) failed",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem documents with these statuses."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, "Problem"),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
        for status in statuses
    }


#: What every API operation can answer besides its success: applied to the whole API router.
COMMON_PROBLEMS = problem_responses(400, 401, 403, 404, 405, 409, 413, 422, 429)


def unstorable_problem() -> Problem:
    return Problem(
        422,
        "Invalid request",
        "A value in this request cannot be stored, so nothing was changed: numbers (ids "
        "included) go up to 9223372036854775807, and text may not contain NUL or other "
        "control characters. Correct the value and send it again.",
        kind="validation",
    )


def database_unavailable_problem() -> Problem:
    """The database is not answering (restarting, unreachable, locked past the busy
    timeout): nothing was stored, and a caller that sees 503 with Retry-After sends again,
    where a 500 would say the request itself was at fault."""
    return Problem(
        503,
        "Database unavailable",
        "ledgerlink could not do this because its database is not answering; nothing was "
        "stored. Send it again in a few seconds.",
        headers={"Retry-After": "5"},
    )


def internal_problem(request: Request) -> Problem:
    request_id = request.headers.get("x-request-id", "")
    return Problem(
        500,
        "Internal error",
        "ledgerlink hit an unexpected error; nothing was changed by this request. "
        "The event is in the server log"
        + (f" under request id {request_id}." if request_id else "."),
    )
