"""Compiling a validated spec into closures, and running it over records.

``compile_spec`` checks everything the structure check cannot (expressions, table
rows, currency codes) and reports each problem with its file and line. A compiled
mapping maps one record in a few microseconds: a record in, a target record out, with
per-field errors collected (never raised) and notes (roundings, rates, derived IDs)
that a run records beside its output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ledgerlink.domain.money import Money, MoneyError, normalise_currency
from ledgerlink.mapping.errors import (
    ExpressionError,
    FieldError,
    MappingValueError,
    SpecError,
    SpecProblem,
)
from ledgerlink.mapping.expressions import Closure, Env, compile_expression
from ledgerlink.mapping.loader import LoadedDocument, Loc, field_path
from ledgerlink.mapping.scope import DEFAULT_CONTEXT, MappingContext, Note, Scope
from ledgerlink.mapping.spec import MappingSpec, TableDocument, TableSpec
from ledgerlink.mapping.tables import LookupTable
from ledgerlink.mapping.transforms.currency import CurrencyTable
from ledgerlink.mapping.transforms.customer_ids import DEFAULT_FORMATS, IdFormat

_BAD_INPUT = (MappingValueError, MoneyError, ValueError, TypeError, LookupError, ArithmeticError)


@dataclass(slots=True)
class MappingResult:
    output: dict[str, Any]
    errors: list[FieldError]
    notes: list[Note]

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": to_json(self.output),
            "errors": [e.as_dict() for e in self.errors],
            "notes": [to_json(n.as_dict()) for n in self.notes],
        }


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    path: tuple[str, ...]
    compute: Closure
    when: Closure | None
    default: Any
    has_default: bool
    required: bool
    keep_null: bool


@dataclass
class CompiledMapping:
    """A spec ready to run. ``version`` is set by whoever loaded it (the repository) so
    every run can record exactly which version produced its output."""

    spec: MappingSpec
    tables: dict[str, LookupTable]
    fields: tuple[_Field, ...]
    params: Mapping[str, Any]
    variables: tuple[tuple[str, Closure], ...] = ()
    _plan: tuple[tuple[Any, ...], ...] = field(default=(), repr=False)
    _variables: tuple[tuple[str, str, Closure], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        self._variables = tuple((name, f"vars.{name}", compute) for name, compute in self.variables)
        self._plan = tuple(
            (
                f.name,
                f.path if len(f.path) > 1 else None,
                f.compute,
                f.when,
                f.default,
                f.has_default,
                f.required,
                f.keep_null,
            )
            for f in self.fields
        )

    version: str = ""
    table_versions: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def apply(
        self,
        record: Mapping[str, Any],
        existing: Mapping[str, Any] | None = None,
        context: MappingContext = DEFAULT_CONTEXT,
    ) -> MappingResult:
        out: dict[str, Any] = {}
        if type(record) is not dict:
            if not isinstance(record, Mapping):
                return MappingResult(
                    out,
                    [
                        FieldError(
                            "", f"a record must be an object of fields, got {type(record).__name__}"
                        )
                    ],
                    [],
                )
            record = dict(record)
        scope = Scope(record, existing, out, self.params, context)
        errors: list[FieldError] = []
        if self.variables:
            values = scope.vars
            for name, label, compute in self._variables:
                scope.field = label
                try:
                    values[name] = compute(scope)
                except MappingValueError as exc:
                    errors.append(FieldError(scope.field, exc.message, exc.fix))
                except _BAD_INPUT as exc:
                    errors.append(FieldError(scope.field, str(exc) or type(exc).__name__))
        for name, path, compute, when, default, has_default, required, keep_null in self._plan:
            scope.field = name
            try:
                if when is not None and not when(scope):
                    continue
                value = compute(scope)
            except MappingValueError as exc:
                errors.append(FieldError(name, exc.message, exc.fix))
                continue
            except _BAD_INPUT as exc:
                errors.append(FieldError(name, str(exc) or type(exc).__name__))
                continue
            kind = type(value)
            if value is None or (kind is str and not value):
                if has_default:
                    value = default
                elif value is None and required:
                    errors.append(
                        FieldError(
                            name,
                            "is required but the mapping produced nothing",
                            "check that the source record has the fields this rule reads",
                        )
                    )
                    continue
                if value is None and not keep_null:
                    continue
            elif kind is not str:
                value = _output_value(value)
            if path is None:
                out[name] = value
            elif len(path) == 2:
                child = out.get(path[0])
                if type(child) is not dict:
                    child = out[path[0]] = {}
                child[path[1]] = value
            else:
                _set_nested(out, path, value)
        return MappingResult(out, errors, scope.notes)

    def apply_many(
        self,
        records: Iterable[Mapping[str, Any]],
        context: MappingContext = DEFAULT_CONTEXT,
    ) -> list[MappingResult]:
        return [self.apply(record, None, context) for record in records]


def _output_value(value: Any) -> Any:
    if isinstance(value, Money):
        return value.format_plain()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _set_nested(out: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = out
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def to_json(value: Any) -> Any:
    """Output, notes and inputs as JSON-safe values (Decimal and Money as text)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, Money):
        return value.format_plain()
    if isinstance(value, Decimal):
        return str(value)
    return value


# ---- compiling ----------------------------------------------------------------------------


def build_table(
    name: str, table: TableSpec, where: LoadedDocument, loc: Loc
) -> tuple[LookupTable, list[SpecProblem]]:
    """A lookup table from its spec, and every problem with its rows."""
    problems: list[SpecProblem] = []
    columns = set(table.keys) | set(table.values)
    overlap = set(table.keys) & set(table.values)
    if overlap:
        problems.append(
            where.problem(
                (*loc, "values"), f"{', '.join(sorted(overlap))} is both a key and a value"
            )
        )
    seen: dict[tuple[str, ...], int] = {}
    for index, row in enumerate(table.rows):
        row_loc = (*loc, "rows", index)
        for column in sorted(columns - set(row)):
            problems.append(where.problem(row_loc, f"row has no {column!r} column"))
        for column in sorted(set(row) - columns):
            problems.append(
                where.problem(
                    (*row_loc, column),
                    f"unknown column {column!r}; allowed: "
                    + ", ".join([*table.keys, *table.values]),
                )
            )
        key = tuple(str(row.get(k, "")).strip().lower() for k in table.keys)
        if key in seen:
            problems.append(
                where.problem(
                    row_loc, f"duplicates row {seen[key] + 1} (same {', '.join(table.keys)})"
                )
            )
        seen.setdefault(key, index)
    return LookupTable.build(name, table.keys, table.values, table.rows), problems


def load_table(loaded: LoadedDocument) -> LookupTable:
    document = loaded.document
    if not isinstance(document, TableDocument):
        raise SpecError([loaded.problem(("kind",), f"{loaded.name} is a mapping, not a table")])
    table, problems = build_table(document.name, document, loaded, ())
    if problems:
        raise SpecError(problems)
    return table


def compile_spec(
    loaded: LoadedDocument, shared_tables: Mapping[str, LookupTable] | None = None
) -> CompiledMapping:
    """Compile a loaded spec; :class:`SpecError` lists every problem with its line."""
    spec = loaded.document
    if not isinstance(spec, MappingSpec):
        raise SpecError([loaded.problem(("kind",), f"{loaded.name} is a table, not a mapping")])
    problems: list[SpecProblem] = []
    tables: dict[str, LookupTable] = {}
    shared = shared_tables or {}
    for index, name in enumerate(spec.include_tables):
        if name in shared:
            tables[name] = shared[name]
        else:
            problems.append(
                loaded.problem(
                    ("include_tables", index),
                    f"there is no shared table {name!r}; known: "
                    + (", ".join(sorted(shared)) or "none"),
                )
            )
    for name, table_spec in spec.tables.items():
        table, found = build_table(name, table_spec, loaded, ("tables", name))
        problems.extend(found)
        tables[name] = table

    digits: dict[str, dict[str, int]] = {"target_digits": {}, "source_digits": {}}
    for side in digits:
        for code, count in getattr(spec.currency, side).items():
            try:
                digits[side][normalise_currency(code)] = count
            except MoneyError as exc:
                problems.append(loaded.problem(("currency", side, code), str(exc)))

    formats: dict[str, IdFormat] = dict(DEFAULT_FORMATS)
    for system, fmt in spec.id_formats.items():
        if system not in DEFAULT_FORMATS:
            problems.append(
                loaded.problem(
                    ("id_formats", system),
                    f"unknown system {system!r}; allowed: {', '.join(DEFAULT_FORMATS)}",
                )
            )
            continue
        formats[system] = IdFormat(fmt.prefix, fmt.width, fmt.case, fmt.max_length)

    env = Env(
        tables=tables,
        rounding=spec.currency.rounding,
        target_digits=CurrencyTable(digits["target_digits"]),
        source_digits=CurrencyTable(digits["source_digits"]),
        id_formats=formats,
        params=spec.params,
    )

    defined: list[str] = []

    def expression(text: str, loc: Loc) -> Closure | None:
        try:
            return compile_expression(text, env, variables=defined).evaluate
        except ExpressionError as exc:
            line = loaded.line(loc)
            problems.append(
                SpecProblem(loaded.file, line, _field_path(loc), _with_column(text, exc))
            )
            return None

    variables: list[tuple[str, Closure]] = []
    for name, text in spec.vars.items():
        compiled_var = expression(text, ("vars", name))
        defined.append(name)
        if compiled_var is not None:
            variables.append((name, compiled_var))

    compiled: list[_Field] = []
    for name, rule in spec.fields.items():
        loc: Loc = ("fields", name)
        compute: Closure | None
        if rule.expr is not None:
            compute = expression(rule.expr, (*loc, "expr") if _is_mapping(loaded, loc) else loc)
        else:
            constant = rule.value
            compute = _constant(constant)
        when = expression(rule.when, (*loc, "when")) if rule.when is not None else None
        if compute is None or (rule.when is not None and when is None):
            continue
        compiled.append(
            _Field(
                name=name,
                path=tuple(name.split(".")),
                compute=compute,
                when=when,
                default=rule.default,
                has_default="default" in rule.model_fields_set,
                required=rule.required,
                keep_null=rule.keep_null,
            )
        )
    if problems:
        raise SpecError(problems)
    return CompiledMapping(spec, tables, tuple(compiled), dict(spec.params), tuple(variables))


def _constant(value: Any) -> Closure:
    return lambda _s: value


def _is_mapping(loaded: LoadedDocument, loc: Loc) -> bool:
    node = loaded.tree
    for part in loc:
        node = node[part]
    return isinstance(node, Mapping)


def _field_path(loc: Loc) -> str:
    return field_path(loc)


def _with_column(text: str, exc: ExpressionError) -> str:
    if exc.column is None:
        return exc.message
    return f"{exc.message} — in `{text}` at column {exc.column}"
