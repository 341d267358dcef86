"""Preview: run a spec over a handful of records and show input and output side by side
with per-field errors. Nothing is written anywhere.

Where the records come from is a :class:`PreviewSource`. :class:`SampleSource` holds
records someone uploaded (or the samples shipped in ``mapping/samples``); a source of
"the N most recent real records" of a system is provided by its connector and handed in
by the caller (see ``ledgerlink/store/mapping_repo.py``: ``register_recent_source``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import Any, Protocol

from ledgerlink.mapping.engine import CompiledMapping, to_json
from ledgerlink.mapping.errors import FieldError
from ledgerlink.mapping.scope import DEFAULT_CONTEXT, MappingContext, Note

MAX_PREVIEW = 200


class PreviewSource(Protocol):
    """Records to preview a spec over; ``description`` says where they came from."""

    description: str

    def records(self, limit: int) -> Sequence[Mapping[str, Any]]: ...


@dataclass
class SampleSource:
    """Records given by the user (an upload, a pasted JSON list)."""

    samples: Sequence[Mapping[str, Any]]
    description: str = "uploaded sample"

    def records(self, limit: int) -> Sequence[Mapping[str, Any]]:
        return list(self.samples[:limit])


@dataclass(frozen=True)
class PreviewRow:
    index: int
    input: Any
    output: dict[str, Any]
    errors: list[FieldError]
    notes: list[Note]

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "input": to_json(self.input),
            "output": to_json(self.output),
            "errors": [e.as_dict() for e in self.errors],
            "notes": [to_json(n.as_dict()) for n in self.notes],
        }


@dataclass(frozen=True)
class Preview:
    spec: str
    version: str
    source: str
    rows: list[PreviewRow] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for row in self.rows if not row.ok)

    def as_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "version": self.version,
            "source": self.source,
            "records": len(self.rows),
            "failed": self.failed,
            "rows": [row.as_dict() for row in self.rows],
        }


def run_preview(
    compiled: CompiledMapping,
    source: PreviewSource,
    limit: int = 20,
    context: MappingContext = DEFAULT_CONTEXT,
) -> Preview:
    """Map up to ``limit`` records of ``source``; every record gets a row."""
    limit = max(1, min(limit, MAX_PREVIEW))
    rows = []
    for index, record in enumerate(source.records(limit)):
        result = compiled.apply(record, None, context)
        rows.append(PreviewRow(index, record, result.output, result.errors, result.notes))
    return Preview(compiled.name, compiled.version, source.description, rows)


def sample_records(record_kind: str) -> list[dict[str, Any]]:
    """The shipped sample records of a source kind (``paytrace.transaction``), or none."""
    entry = resources.files("ledgerlink.mapping") / "samples" / f"{record_kind}.json"
    if not entry.is_file():
        return []
    loaded = json.loads(entry.read_text("utf-8"), parse_float=Decimal)
    return [dict(r) for r in loaded] if isinstance(loaded, list) else []
