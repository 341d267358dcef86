"""SBC's error answers: a JSON array of ``{"$severity", "$dataCode", "$message", "$source"}``."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.responses import JSONResponse


@dataclass(frozen=True, slots=True)
class Problem:
    message: str
    source: str = ""
    data_code: str = "RecordInvalid"

    def as_json(self) -> dict[str, str]:
        return {
            "$severity": "error",
            "$dataCode": self.data_code,
            "$message": self.message,
            "$source": self.source,
        }


@dataclass
class SbcError(Exception):
    """Raised anywhere in the simulator; becomes SBC's error array with ``status``."""

    status: int
    problems: list[Problem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> JSONResponse:
        return error_response(self.status, self.problems, self.headers)


def error_response(
    status: int, problems: list[Problem], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse([p.as_json() for p in problems], status, headers=headers)


def invalid(source: str, message: str) -> SbcError:
    """422: one field is wrong (Rails-style message, e.g. "can't be blank")."""
    return SbcError(422, [Problem(message, source)])


def invalid_many(problems: list[Problem]) -> SbcError:
    return SbcError(422, problems)


def not_found(what: str = "record") -> SbcError:
    return SbcError(
        404, [Problem(f"The requested {what} could not be found.", "", "RecordNotFound")]
    )


def unauthorised(message: str) -> SbcError:
    return SbcError(401, [Problem(message, "", "AuthorizationFailure")])
