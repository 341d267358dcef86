"""Input types every API route shares, so bad input is a 422 naming the field.

* Ids and other integers stored in the database are 64-bit: a larger number in a path,
  query or body is refused before it reaches SQL (SQLite and PostgreSQL both fail on it).
* Text may not hold NUL, other control characters (tab, line feed and carriage return
  excepted) or lone surrogates: PostgreSQL refuses NUL outright and the rest ends up in
  logs, CSV exports and terminals. Nested JSON objects (connection settings) are checked
  key by key, and the error names the nested field.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from ledgerlink.domain.text import PATTERN, REFUSED, control_character_problem

#: The largest integer SQLite and PostgreSQL (bigint) store.
INT64_MAX = 2**63 - 1

#: A database id in a path: 1 to 2**63 - 1.
PathId = Annotated[int, Path(ge=1, le=INT64_MAX)]
#: An optional database id in a query string.
QueryId = Annotated[int | None, Query(ge=1, le=INT64_MAX)]
#: A database id in a request body.
BodyId = Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]


class _NoControlCharacters:
    """Refuses control characters with a message saying which and where; documents the
    rule in the OpenAPI schema so generated clients and fuzzers know it: as a ``pattern``
    the whole text matches, or for documents as ``"not": {"pattern": <a refused
    character>}`` (see ``CleanDocument``)."""

    def __init__(self, *, document: bool = False) -> None:
        self.document = document

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_clean, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        if out.get("type") == "string" and self.document:
            out.setdefault("not", {"pattern": REFUSED})
        elif out.get("type") == "string":
            out.setdefault("pattern", PATTERN)
        return out


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        problem = control_character_problem(value)
        if problem:
            raise PydanticCustomError("control_character", problem)
    return value


#: Text without NUL or other control characters (tab, LF and CR allowed).
CleanText = Annotated[str, _NoControlCharacters()]

#: A whole document (a YAML spec of up to 256 KiB) under the same rule. Its OpenAPI schema
#: says "contains no refused character" instead of "matches ^[^…]*$" (the same strings
#: pass): tools that fold ``maxLength`` into a whole-text pattern, as the schemathesis
#: fuzzer does, would build a regular expression of 262,144 repetitions, over a second of
#: CPU each time, for no more checking.
CleanDocument = Annotated[str, _NoControlCharacters(document=True)]


def _clean_nested(value: Any, path: str = "") -> None:
    if isinstance(value, str):
        problem = control_character_problem(value)
        if problem:
            raise PydanticCustomError(
                "control_character", "{path}: {problem}", {"path": path, "problem": problem}
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            key_problem = control_character_problem(str(key))
            if key_problem:
                raise PydanticCustomError(
                    "control_character",
                    "{path}: the key {problem}",
                    {"path": where, "problem": key_problem},
                )
            _clean_nested(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _clean_nested(item, f"{path}[{index}]")


def _clean_object(value: dict[str, Any]) -> dict[str, Any]:
    _clean_nested(value)
    return value


#: A JSON object whose keys and string values, at any depth, are clean text.
CleanObject = Annotated[dict[str, Any], AfterValidator(_clean_object)]
