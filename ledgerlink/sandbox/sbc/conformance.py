"""Every answer the SBC simulator gives, checked against Sage's published v3.1 schema.

The simulator is only worth testing against if it answers as Sage does, so the test suite
turns this check on for every SBC simulator it starts (in-process or ``ledgerlink sandbox
serve sbc`` in a child process): set ``SBC_SANDBOX_SCHEMA_CHECK=1`` and each response
under ``/v3.1`` is validated against the operation's schema in ``vendor/`` (Sage's own
``swagger.full.json`` and ``swagger.user_businesses.json``, copied unchanged; see
``vendor/README.md``). A mismatch is logged, kept in :data:`MISMATCHES` for the process
and, when ``SBC_SANDBOX_SCHEMA_REPORT`` names a file, appended to it as a JSON line,
so a test harness can fail the test that caused it. The answer itself is not changed.

What the published schema does not say, and where Sage's developer guides and recorded
traffic say more (``../shared/api-notes/sbc.md``), is written down here, each with its
reason:

* Swagger 2.0 has no ``nullable``: any property may be ``null``.
* The schema defines no extra properties, and the notes say SBC sends none: objects that
  list their properties refuse others (``additionalProperties: false``), so the simulator
  cannot invent fields.
* Collections are documented as bare arrays; SBC answers the paging envelope (``$total
  $page $next $back $itemsPerPage $items``, ``$items_per_page`` on ``/businesses`` as the
  developer guide's *Best Practices* page shows) whose items follow the operation's schema.
  Business items carry ``$path`` there too.
* Errors (4xx/5xx) are not in the schema; they are SBC's error array.
* A POST repeated with a known ``idempotency_id`` answers ``200`` with the original record
  (the guides' idempotency section), besides the documented ``201``.

The schema is read and compiled once per process (:func:`published_schema`); validators
are compiled per definition on first use, so a response costs a JSON parse and one
validation in compiled (Rust) code.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("ledgerlink.sandbox.sbc.conformance")

#: Not ``LEDGERLINK_*``: those are ledgerlink's settings, which test harnesses replace
#: for the child processes they start (tests/support/server.py ``cli_env``); these must
#: reach every simulator the suite starts.
CHECK_ENV = "SBC_SANDBOX_SCHEMA_CHECK"
REPORT_ENV = "SBC_SANDBOX_SCHEMA_REPORT"
VENDOR_DIR = Path(__file__).parent / "vendor"
SWAGGER = VENDOR_DIR / "sbc-v3.1-swagger.json"
BUSINESSES_SWAGGER = VENDOR_DIR / "sbc-v3.1-user-businesses.json"
API_PREFIX = "/v3.1"

#: The paging envelope (Sage's guides; the schema documents collections as arrays).
_ENVELOPE_KEYS = {"$total", "$page", "$next", "$back", "$itemsPerPage", "$items"}
#: The error array every refusal answers (api-notes "Writes": Errors).
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["$severity", "$dataCode", "$message", "$source"],
        "additionalProperties": False,
        "properties": {
            "$severity": {"type": "string"},
            "$dataCode": {"type": "string"},
            "$message": {"type": "string"},
            "$source": {"type": "string"},
        },
    },
}


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One response that does not follow the published schema."""

    method: str
    path: str
    operation: str  # "GET /contacts/{key}"
    status: int
    error: str

    def describe(self) -> str:
        return (
            f"SBC sandbox answered {self.method} {self.path} ({self.operation}) with "
            f"{self.status}, which the published v3.1 schema does not allow: {self.error}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "operation": self.operation,
            "status": self.status,
            "error": self.error,
        }


#: Every mismatch seen in this process (a test harness reads and clears it).
MISMATCHES: list[Mismatch] = []
_LOCK = threading.Lock()
_checked = 0


@dataclass(frozen=True, slots=True)
class Operation:
    template: str  # "/contacts/{key}"
    method: str
    #: status → the definition name of its body (None: no body), as published.
    responses: dict[str, str | None]
    collection: bool  # documented as an array: SBC sends the paging envelope

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


#: Keys that only document (dropped: smaller validators, faster to compile).
_PROSE = frozenset({"description", "example", "title"})


def _nullable(schema: Any) -> Any:
    """The schema with ``null`` allowed for every property and no unlisted properties."""
    if isinstance(schema, list):
        return [_nullable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: _nullable(v)
        for k, v in schema.items()
        if k != "properties" and k not in _PROSE and not k.startswith("x-")
    }
    properties = schema.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {name: _or_null(_nullable(p)) for name, p in properties.items()}
        out.setdefault("additionalProperties", False)
    return out


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if "$ref" in schema:
        return {"anyOf": [{"type": "null"}, {"$ref": schema["$ref"]}]}
    return schema


class PublishedSchema:
    """Sage's published v3.1 description, ready to validate responses with."""

    def __init__(self, swagger: dict[str, Any], businesses: dict[str, Any]) -> None:
        definitions = {**swagger["definitions"], **businesses["definitions"]}
        # Guides: business items carry $path like every other item.
        business = copy.deepcopy(definitions["Business"])
        business["properties"]["$path"] = {"type": "string"}
        definitions["Business"] = business
        self.definitions = _nullable(definitions)
        self._validators: dict[str, Any] = {}
        self._operations: dict[tuple[str, str], Operation] = {}
        for document in (swagger, businesses):
            for template, item in document["paths"].items():
                for method, op in item.items():
                    if not isinstance(op, dict) or "responses" not in op:
                        continue
                    responses: dict[str, str | None] = {}
                    collection = False
                    for status, answer in op["responses"].items():
                        body = answer.get("schema") or {}
                        if body.get("type") == "array":
                            collection = True
                            body = body.get("items") or {}
                        ref = body.get("$ref")
                        responses[status] = ref.rsplit("/", 1)[-1] if ref else None
                    self._operations[(method.upper(), template)] = Operation(
                        template, method.upper(), responses, collection
                    )
        self._error_validator = self._compile(_ERROR_SCHEMA)

    # -- compiling ----------------------------------------------------------------------

    def _compile(self, schema: dict[str, Any]) -> Any:
        # deferred: jsonschema_rs is a test dependency, needed only when the check is on
        import jsonschema_rs

        return jsonschema_rs.Draft4Validator(
            {**schema, "definitions": self.definitions}, validate_formats=True
        )

    def validator(self, definition: str) -> Any:
        found = self._validators.get(definition)
        if found is None:
            found = self._compile({"$ref": f"#/definitions/{definition}"})
            self._validators[definition] = found
        return found

    # -- matching -------------------------------------------------------------------------

    def operation(self, method: str, path: str) -> Operation | None:
        """The published operation ``method path`` (``path`` without ``/v3.1``)."""
        parts = [p for p in path.split("/") if p]
        if len(parts) == 1:
            candidates = [f"/{parts[0]}"]
        elif len(parts) == 2:
            candidates = [f"/{parts[0]}/{{key}}", f"/{parts[0]}/{parts[1]}"]
        else:
            candidates = ["/" + "/".join(parts)]
        for template in candidates:
            found = self._operations.get((method, template))
            if found is not None:
                return found
        return None

    # -- checking -----------------------------------------------------------------------

    def check(self, method: str, path: str, status: int, body: bytes) -> Mismatch | None:
        """``None`` if the response follows the published schema, else what is wrong."""
        operation = self.operation(method, path)
        name = operation.name if operation else f"{method} {path}"
        try:
            problem = self._problem(operation, method, status, body)
        except ValueError as exc:
            problem = f"the body is not JSON ({exc})"
        if problem is None:
            return None
        return Mismatch(method, path, name, status, problem)

    def _problem(
        self, operation: Operation | None, method: str, status: int, body: bytes
    ) -> str | None:
        if status >= 400:
            return _first_error(self._error_validator, json.loads(body), "error array")
        if operation is None:
            return "the published schema has no such operation"
        allowed = set(operation.responses)
        if method == "POST" and status == 200 and "201" in allowed:
            allowed.add("200")  # idempotent replay (guides)
        if str(status) not in allowed:
            return f"status {status} is not documented (documented: {', '.join(sorted(allowed))})"
        definition = operation.responses.get(str(status)) or operation.responses.get("201")
        if definition is None:
            return None if not body else "a body where the schema documents none"
        instance = json.loads(body)
        validator = self.validator(definition)
        if not operation.collection:
            return _first_error(validator, instance, definition)
        return self._envelope_problem(operation, instance, validator, definition)

    def _envelope_problem(
        self, operation: Operation, instance: Any, validator: Any, definition: str
    ) -> str | None:
        if not isinstance(instance, dict):
            return "a collection must answer the paging envelope ($total, $page, … $items)"
        expected = set(_ENVELOPE_KEYS)
        if operation.template == "/businesses":
            expected = (expected - {"$itemsPerPage"}) | {"$items_per_page"}
        if set(instance) != expected:
            return f"envelope keys {sorted(instance)} differ from the documented {sorted(expected)}"
        for key in ("$total", "$page"):
            if not isinstance(instance[key], int):
                return f"{key} must be an integer"
        for key in ("$next", "$back"):
            if instance[key] is not None and not isinstance(instance[key], str):
                return f"{key} must be a relative path or null"
        if not isinstance(instance["$items"], list):
            return "$items must be an array"
        for index, item in enumerate(instance["$items"]):
            problem = _first_error(validator, item, definition)
            if problem is not None:
                return f"$items[{index}]: {problem}"
        return None


def _first_error(validator: Any, instance: Any, what: str) -> str | None:
    for error in validator.iter_errors(instance):
        where = "/".join(str(p) for p in error.instance_path) or "(the body)"
        return f"{what} at {where}: {error.message}"
    return None


@functools.cache
def published_schema() -> PublishedSchema:
    """The schema, read and compiled once per process (the file is over 1 MB)."""
    return PublishedSchema(
        json.loads(SWAGGER.read_text(encoding="utf-8")),
        json.loads(BUSINESSES_SWAGGER.read_text(encoding="utf-8")),
    )


def enabled() -> bool:
    return os.environ.get(CHECK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def record(mismatch: Mismatch) -> None:
    """Keep a mismatch where a test harness looks: this process and the report file."""
    log.error("sbc.schema_mismatch", **mismatch.as_json())
    with _LOCK:
        MISMATCHES.append(mismatch)
        report = os.environ.get(REPORT_ENV)
        if report:
            with open(report, "a", encoding="utf-8") as out:
                out.write(json.dumps(mismatch.as_json()) + "\n")


def checked() -> int:
    """How many responses this process has checked (``/_sandbox/state`` shows it, so a test
    can see the check is on in a simulator running in another process)."""
    return _checked


def drain() -> list[Mismatch]:
    """The mismatches recorded in this process since the last call (and forget them)."""
    with _LOCK:
        found = list(MISMATCHES)
        MISMATCHES.clear()
    return found


def read_report(path: Path) -> Iterator[Mismatch]:
    """Mismatches a report file holds (written by any process)."""
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield Mismatch(**json.loads(line))


_PREFIX = re.compile(rf"^{re.escape(API_PREFIX)}(?=/|$)")


class SchemaCheckMiddleware:
    """Validates each ``/v3.1`` response the simulator sends (the answer is not changed)."""

    def __init__(self, app: ASGIApp, schema: PublishedSchema | None = None) -> None:
        self.app = app
        self.schema = schema or published_schema()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _PREFIX.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        status = 0
        chunks: list[bytes] = []

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    global _checked
                    _checked += 1
                    path = _PREFIX.sub("", scope["path"]) or "/"
                    found = self.schema.check(scope["method"], path, status, b"".join(chunks))
                    if found is not None:
                        record(found)
            await send(message)

        await self.app(scope, receive, watch)
