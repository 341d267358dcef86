"""What an expression sees while one record is mapped, and what a run supplies."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from ledgerlink.mapping.transforms.currency import RateSource
from ledgerlink.mapping.transforms.customer_ids import NO_LINKS, CustomerLinks


@dataclass(frozen=True, slots=True)
class MappingContext:
    """What a run hands the mapping besides the record: the links between customer IDs,
    where exchange rates come from, and the business date (for rates and ``today()``)."""

    links: CustomerLinks = NO_LINKS
    rates: RateSource | None = None
    today: dt.date | None = None

    def business_date(self) -> dt.date:
        return self.today or dt.date.today()


DEFAULT_CONTEXT = MappingContext()


@dataclass(slots=True)
class Note:
    """Something a run must record beside the output: a rounding remainder, an exchange
    rate used, an ID derived rather than linked."""

    field: str
    kind: str
    detail: dict[str, Any] = dataclass_field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "kind": self.kind, "detail": self.detail}


class Scope:
    """The names an expression can read (``source``, ``existing``, ``target``, ``vars``)
    plus the run's context and the notes being collected."""

    __slots__ = ("context", "existing", "field", "notes", "params", "source", "target", "vars")

    def __init__(
        self,
        source: Any,
        existing: Any,
        target: dict[str, Any],
        params: Any,
        context: MappingContext,
    ) -> None:
        self.source = source
        self.existing = existing
        self.target = target
        self.params = params
        self.context = context
        self.notes: list[Note] = []
        self.field = ""
        self.vars: dict[str, Any] = {}

    def note(self, kind: str, **detail: Any) -> None:
        self.notes.append(Note(self.field, kind, detail))
