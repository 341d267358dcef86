"""The OpenAPI document tells clients which characters text may not hold, in two forms: a
pattern the whole text must match (most fields) and "contains none of these" for whole
YAML documents (``CleanDocument``, see ``web/api/inputs.py`` for why). A JSON Schema
validator must accept and refuse exactly what the API accepts and refuses, in both forms."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from ledgerlink.domain.text import control_character_problem
from ledgerlink.web.api.mappings_api import PreviewIn, SpecIn
from ledgerlink.web.api.members_api import MemberIn
from ledgerlink.web.api.recon_rules_api import RulesIn

#: Every C0 control, DEL, the C1 range and a few characters that look like controls.
CHARACTERS = [chr(code) for code in range(0x00, 0xA1)] + ["\u2028", "\ufeff", "\U0001f600"]


def _text_schema(model: type[Any], field: str) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema()["properties"][field]
    for option in schema.get("anyOf", [schema]):  # ``CleanDocument | None``
        if option.get("type") == "string":
            return option
    raise AssertionError(f"{model.__name__}.{field} has no string schema: {schema}")


@pytest.mark.parametrize(
    ("model", "field", "form"),
    [
        (MemberIn, "first_name", "pattern"),
        (SpecIn, "yaml", "not"),
        (PreviewIn, "yaml", "not"),
        (RulesIn, "yaml", "not"),
    ],
)
def test_the_openapi_schema_refuses_exactly_the_characters_the_api_refuses(
    model: type[Any], field: str, form: str
) -> None:
    schema = _text_schema(model, field)
    assert form in schema, f"{model.__name__}.{field} does not state the rule: {schema}"
    validator = jsonschema_rs.Draft202012Validator(schema)
    for char in CHARACTERS:
        text = f"line one{char}line two"
        api_accepts = control_character_problem(text) is None
        assert validator.is_valid(text) == api_accepts, (
            f"{model.__name__}.{field}: U+{ord(char):04X} is "
            f"{'accepted' if api_accepts else 'refused'} by the API, not by its schema"
        )
