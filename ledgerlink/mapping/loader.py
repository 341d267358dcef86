"""Reading spec YAML: line numbers kept (ruamel.yaml round-trip loader), structure
validated by pydantic, and every problem reported as *file, line, field, what is
allowed*. Also the packaged defaults and rewriting a table inside a spec's YAML (the
portal's GL table editor) without losing comments."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ledgerlink.mapping.errors import SpecError, SpecProblem
from ledgerlink.mapping.spec import ALLOWED_KEYS, Document, MappingSpec, TableDocument
from ledgerlink.yaml_limits import YamlLimits, YamlTooLarge, check_yaml

MAX_YAML_BYTES = 256 * 1024
#: Size, nesting, aliases: what a spec may use (see ``ledgerlink/yaml_limits.py``).
LIMITS = YamlLimits(max_bytes=MAX_YAML_BYTES)

Loc = tuple[str | int, ...]
_UNION_TAGS = frozenset({"str", "int", "bool", "none", "float", "list", "dict"})


@dataclass(frozen=True)
class LoadedDocument:
    """A validated document with what is needed to point at its lines later."""

    document: Document
    text: str
    file: str
    tree: Any

    @property
    def name(self) -> str:
        return self.document.name

    @property
    def sha256(self) -> str:
        return digest(self.text)

    def line(self, loc: Loc) -> int | None:
        return line_of(self.tree, loc)

    def problem(self, loc: Loc, message: str) -> SpecProblem:
        return SpecProblem(self.file, self.line(loc), field_path(loc), message)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def parse_yaml(text: str, file: str) -> Any:
    """The round-trip tree of ``text``; :class:`SpecError` with the line on bad YAML, or
    on YAML too large, too deep or expanding too far through aliases to be built."""
    try:
        check_yaml(text, LIMITS)
        return _yaml().load(text)
    except YamlTooLarge as exc:
        raise SpecError([SpecProblem(file, exc.line, "", f"the spec {exc.message}")]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or exc.context or "not valid YAML"
        raise SpecError(
            [
                SpecProblem(
                    file, line, "", f"not valid YAML: {reason}; check indentation and quoting"
                )
            ]
        ) from None
    except YAMLError as exc:
        raise SpecError([SpecProblem(file, None, "", f"not valid YAML: {exc}")]) from None


def plain(value: Any) -> Any:
    """ruamel's commented containers and scalar subclasses as plain Python values."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def load_document(text: str, file: str, expected_name: str | None = None) -> LoadedDocument:
    """Validate ``text`` as a spec or table; :class:`SpecError` lists every problem."""
    tree = parse_yaml(text, file)
    if not isinstance(tree, CommentedMap):
        raise SpecError(
            [SpecProblem(file, 1, "", "a spec is a YAML mapping starting with name:, source:, …")]
        )
    data = plain(tree)
    kind = data.get("kind", "mapping")
    problems: list[SpecProblem] = []
    document: Document | None = None
    if kind not in ("mapping", "table"):
        problems.append(
            SpecProblem(file, line_of(tree, ("kind",)), "kind", "allowed: mapping, table")
        )
    else:
        model: type[MappingSpec] | type[TableDocument] = (
            MappingSpec if kind == "mapping" else TableDocument
        )
        try:
            document = model.model_validate(data)
        except ValidationError as exc:
            problems.extend(_problems(exc, tree, file, kind))
    if document is not None and expected_name is not None and document.name != expected_name:
        problems.append(
            SpecProblem(
                file,
                line_of(tree, ("name",)),
                "name",
                f"is {document.name!r} but this spec is {expected_name!r}; names cannot change",
            )
        )
    floats = _floats(data, ())
    float_fields = {field_path(loc) for loc, _ in floats}
    problems = [
        p
        for p in problems
        if not any(p.field == f or p.field.startswith((f + ".", f + "[")) for f in float_fields)
    ]
    for number, value in floats:
        problems.append(
            SpecProblem(
                file,
                line_of(tree, number),
                field_path(number),
                f"{value!r} is a floating-point number; quote it (e.g. '12.50') so it stays exact",
            )
        )
    if problems or document is None:
        raise SpecError(problems)
    return LoadedDocument(document, text, file, tree)


def _floats(value: Any, loc: Loc) -> list[tuple[Loc, float]]:
    if isinstance(value, float):
        return [(loc, value)]
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _floats(v, (*loc, k))]
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in _floats(v, (*loc, i))]
    return []


def _allowed_for(loc: Loc, kind: str) -> tuple[str, ...]:
    """The keys allowed where an unknown key ``loc[-1]`` was found."""
    parent = loc[:-1]
    if len(parent) == 0:
        return ALLOWED_KEYS[kind]
    head = parent[0]
    if head == "fields" and len(parent) == 2:
        return ALLOWED_KEYS["field"]
    if head == "tables" and len(parent) == 2:
        return ALLOWED_KEYS["table_spec"]
    if head == "currency" and len(parent) == 1:
        return ALLOWED_KEYS["currency"]
    if head == "id_formats" and len(parent) == 2:
        return ALLOWED_KEYS["id_format"]
    return ()


def _problems(exc: ValidationError, tree: Any, file: str, kind: str) -> list[SpecProblem]:
    found: list[SpecProblem] = []
    for error in exc.errors():
        loc: Loc = tuple(
            part
            for part in error["loc"]
            if not (isinstance(part, str) and part.startswith("function-"))
        )
        # pydantic adds the union member tried ("str", "int", …) to the loc; drop it
        loc = tuple(p for p in loc if not (isinstance(p, str) and p in _UNION_TAGS))
        kind_of = error["type"]
        if kind_of == "extra_forbidden":
            allowed = _allowed_for(loc, kind)
            message = f"unknown key {loc[-1]!r}" + (
                f"; allowed: {', '.join(allowed)}" if allowed else ""
            )
        elif kind_of == "missing":
            message = "is required but missing"
        elif kind_of == "string_pattern_mismatch":
            message = _pattern_hint(loc)
        elif kind_of == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
        else:
            message = str(error["msg"])
            if kind_of.endswith("_type") and "input" in error:
                message += f" (found {error['input']!r})"
        found.append(SpecProblem(file, line_of(tree, loc), field_path(loc), message))
    return found


def _pattern_hint(loc: Loc) -> str:
    if loc and loc[0] == "fields":
        return "a target field name is letters, digits and _, with '.' for nested fields"
    if loc and loc[-1] in ("source", "target"):
        return "write it as system.record, e.g. paytrace.transaction or sage500.customer"
    return "use lower_case_with_underscores (a letter first)"


def field_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "." in part or not part:
            out += f"[{part!r}]"
        else:
            out += ("." if out else "") + part
    return out


def line_of(tree: Any, loc: Loc) -> int | None:
    """1-based line of the deepest part of ``loc`` present in ``tree``."""
    node = tree
    line: int | None = None
    if isinstance(tree, (CommentedMap, CommentedSeq)):
        line = tree.lc.line + 1
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


# ---- packaged defaults --------------------------------------------------------------------


def packaged_names() -> list[str]:
    """Names of the specs and tables shipped in ``ledgerlink/mapping/specs``."""
    folder = resources.files("ledgerlink.mapping") / "specs"
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def packaged_text(name: str) -> str | None:
    entry = resources.files("ledgerlink.mapping") / "specs" / f"{name}.yaml"
    return entry.read_text("utf-8") if entry.is_file() else None


def packaged_file(name: str) -> str:
    return f"ledgerlink/mapping/specs/{name}.yaml"


def config_text(directory: Path | None, name: str) -> tuple[str, str] | None:
    """``(text, path)`` of ``<directory>/<name>.yaml`` when it exists."""
    if directory is None:
        return None
    path = directory / f"{name}.yaml"
    return (path.read_text("utf-8"), str(path)) if path.is_file() else None


def config_names(directory: Path | None) -> list[str]:
    if directory is None or not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yaml"))


# ---- editing a table in place -------------------------------------------------------------


def replace_table_rows(text: str, file: str, table: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """``text`` with the rows of ``tables.<table>`` (or of a table document) replaced,
    comments and order elsewhere kept."""
    tree = parse_yaml(text, file)
    if not isinstance(tree, CommentedMap):
        raise SpecError([SpecProblem(file, 1, "", "the spec is not a YAML mapping")])
    if tree.get("kind") == "table" and tree.get("name") == table:
        target = tree
    else:
        tables = tree.get("tables")
        if not isinstance(tables, CommentedMap) or table not in tables:
            raise SpecError(
                [SpecProblem(file, line_of(tree, ("tables",)), f"tables.{table}", "no such table")]
            )
        target = tables[table]
    new_rows = CommentedSeq()
    for row in rows:
        item = CommentedMap()
        for key, value in row.items():
            item[key] = value
        item.fa.set_flow_style()
        new_rows.append(item)
    target["rows"] = new_rows
    out = io.StringIO()
    yaml = _yaml()
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.dump(tree, out)
    return out.getvalue()
