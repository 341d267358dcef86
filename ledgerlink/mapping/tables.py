"""Lookup tables finance edits (GL accounts, payment status, tran types): rows of key
columns → value columns, matched case-insensitively, with ``*`` as a wildcard.

When several rows match, the most specific one wins (fewest wildcards), then the first
in the file. Lookups are memoised per key, so a table costs one dict hit per record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from ledgerlink.mapping.errors import MappingValueError

WILDCARD = "*"


def _key(value: Any) -> str:
    return "" if value is None else str(value).strip().lower()


@dataclass
class LookupTable:
    name: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...]
    _exact: dict[tuple[str, ...], Mapping[str, Any]] = field(default_factory=dict, repr=False)
    _wild: list[tuple[int, int, tuple[str, ...], Mapping[str, Any]]] = field(
        default_factory=list, repr=False
    )
    _memo: dict[tuple[str, ...], Mapping[str, Any] | None] = field(default_factory=dict, repr=False)
    _raw: dict[tuple[Any, ...], Mapping[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for order, row in enumerate(self.rows):
            key = tuple(_key(row.get(k)) for k in self.keys)
            wild = sum(1 for part in key if part == WILDCARD)
            if wild == 0:
                self._exact.setdefault(key, row)
            else:
                self._wild.append((wild, order, key, row))
        self._wild.sort(key=lambda item: (item[0], item[1]))

    @classmethod
    def build(
        cls,
        name: str,
        keys: Sequence[str],
        values: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
    ) -> LookupTable:
        return cls(name, tuple(keys), tuple(values), tuple(rows))

    def find(self, *parts: Any) -> Mapping[str, Any] | None:
        """The row matching ``parts`` (one per key column), or ``None``."""
        key = tuple(_key(p) for p in parts)
        try:
            return self._memo[key]
        except KeyError:
            pass
        found = self._exact.get(key)
        if found is None:
            for _wild, _order, pattern, row in self._wild:
                if all(p in (WILDCARD, k) for p, k in zip(pattern, key, strict=True)):
                    found = row
                    break
        if len(self._memo) < 10_000:
            self._memo[key] = found
        return found

    def get(self, column: str, *parts: Any) -> Any:
        """The ``column`` of the matching row; a :class:`MappingValueError` naming the
        table and the keys when nothing matches."""
        try:
            return self._raw[parts].get(column)
        except (KeyError, TypeError):
            pass
        if len(parts) != len(self.keys):
            raise MappingValueError(
                f"table {self.name} is looked up by {len(self.keys)} key(s) "
                f"({', '.join(self.keys)}), got {len(parts)}"
            )
        row = self.find(*parts)
        if row is not None and len(self._raw) < 10_000:
            with suppress(TypeError):  # an unhashable key (a list) is not memoised
                self._raw[parts] = row
        if row is None:
            shown = ", ".join(f"{k}={p!r}" for k, p in zip(self.keys, parts, strict=True))
            raise MappingValueError(
                f"no row of table {self.name} matches {shown}",
                f"add a row for it to the {self.name} table (or a '*' row as a catch-all)",
            )
        return row.get(column)

    def as_rows(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.rows]
