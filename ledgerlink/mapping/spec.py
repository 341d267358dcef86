"""The shape of a mapping spec and of a shared table, validated by pydantic.

A spec (``kind: mapping``, the default) says how a record of ``source`` becomes a record
of ``target``: one rule per target field (an expression, or a constant ``value``), with
an optional ``default``, ``when`` condition and ``required`` flag, plus its tables,
parameters, currency rules and customer ID formats. A table document (``kind: table``)
is a lookup table several specs share (``include_tables``), e.g. ``payment_status``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, model_validator

from ledgerlink.mapping.transforms.currency import Rounding

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
TargetField = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z$][A-Za-z0-9_$]*(\.[A-Za-z$][A-Za-z0-9_$]*)*$", max_length=200
    ),
]
RecordKind = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+\.[a-z0-9_]+$", max_length=100)]
Cell = str | int | bool | None
Digits = Annotated[int, Field(ge=0, le=6)]

_STRICT = ConfigDict(extra="forbid", frozen=True)


class FieldRule(BaseModel):
    """How one target field is computed. A plain string in YAML is shorthand for
    ``{expr: <string>}``."""

    model_config = _STRICT

    expr: str | None = None
    value: JsonValue = None
    default: JsonValue = None
    when: str | None = None
    required: bool = False
    keep_null: bool = False
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"expr": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_source(self) -> FieldRule:
        has_value = "value" in self.model_fields_set
        if (self.expr is None) == (not has_value):
            raise ValueError("give either expr (an expression) or value (a constant), not both")
        return self


class TableSpec(BaseModel):
    model_config = _STRICT

    description: str = ""
    keys: list[Identifier] = Field(min_length=1)
    values: list[Identifier] = Field(min_length=1)
    rows: list[dict[str, Cell]] = Field(default_factory=list)


class CurrencySettings(BaseModel):
    """Digits per currency as each side keeps them (Sage 500 ``tmcCurrency``); ISO 4217
    for any currency not listed. ``rounding`` applies whenever precision is lost."""

    model_config = _STRICT

    rounding: Rounding = Rounding.HALF_UP
    target_digits: dict[str, Digits] = Field(default_factory=dict)
    source_digits: dict[str, Digits] = Field(default_factory=dict)


class IdFormatSpec(BaseModel):
    model_config = _STRICT

    prefix: str = Field(default="", max_length=10)
    width: int = Field(default=0, ge=0, le=20)
    case: Literal["upper", "lower", "keep"] = "upper"
    max_length: int = Field(default=50, ge=1, le=100)


class MappingSpec(BaseModel):
    model_config = _STRICT

    kind: Literal["mapping"] = "mapping"
    name: Identifier
    description: str = ""
    source: RecordKind
    target: RecordKind
    params: dict[Identifier, JsonValue] = Field(default_factory=dict)
    currency: CurrencySettings = Field(default_factory=CurrencySettings)
    id_formats: dict[str, IdFormatSpec] = Field(default_factory=dict)
    tables: dict[Identifier, TableSpec] = Field(default_factory=dict)
    include_tables: list[Identifier] = Field(default_factory=list)
    vars: dict[Identifier, str] = Field(default_factory=dict)
    fields: dict[TargetField, FieldRule] = Field(min_length=1)


class TableDocument(TableSpec):
    kind: Literal["table"]
    name: Identifier


Document = MappingSpec | TableDocument

#: The keys each part of a spec accepts, for "unknown key" messages.
ALLOWED_KEYS: dict[str, tuple[str, ...]] = {
    "mapping": tuple(MappingSpec.model_fields),
    "table": tuple(TableDocument.model_fields),
    "field": tuple(FieldRule.model_fields),
    "table_spec": tuple(TableSpec.model_fields),
    "currency": tuple(CurrencySettings.model_fields),
    "id_format": tuple(IdFormatSpec.model_fields),
}
