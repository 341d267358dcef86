"""The Audit page's filters, read from its query string.

Taken as text and checked here rather than by FastAPI's typed parameters, so that a typo
in a date comes back as the page with the error beside the field and what was typed
still in it (not a 422 document or a 500), and so the same checks serve the page and its
CSV export.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlencode

from ledgerlink.store.audit_search import AuditFilter

#: Every query parameter the page reads (anything else is ignored).
FIELDS = ("actor", "action", "entity_type", "entity_id", "since", "until")
_LIMITS = {"actor": 254, "action": 100, "entity_type": 64, "entity_id": 100}
_TYPE = re.compile(r"^[a-z][a-z0-9_]*$")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class FilterInput:
    """What was typed (to put back in the form), what it means, and what is wrong."""

    typed: dict[str, str]
    wanted: AuditFilter
    before_seq: int | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def query(self, **extra: int | None) -> str:
        """The query string of this filter (for paging and export links)."""
        pairs = [(k, v) for k, v in self.typed.items() if v]
        pairs += [(k, str(v)) for k, v in extra.items() if v is not None]
        return urlencode(pairs)


def read(params: Mapping[str, str]) -> FilterInput:
    """The filters in ``params``; ``errors`` names each bad field and how to fix it."""
    typed = {name: (params.get(name) or "").strip() for name in FIELDS}
    errors: dict[str, str] = {}
    for name, limit in _LIMITS.items():
        if len(typed[name]) > limit:
            errors[name] = f"is longer than {limit} characters; shorten it"
    if (
        typed["entity_type"]
        and "entity_type" not in errors
        and not _TYPE.match(typed["entity_type"])
    ):
        errors["entity_type"] = "is not an object type; choose one from the list"
    if typed["entity_id"] and not typed["entity_type"]:
        errors["entity_type"] = "choose the object's type as well as its ID"
    since = _day(typed["since"], "since", errors)
    until = _day(typed["until"], "until", errors)
    if since and until and until < since:
        errors["until"] = f"is before the start date {since.isoformat()}; swap the dates"
    before_seq = _seq(params.get("before") or "", errors)
    wanted = AuditFilter(
        actor=typed["actor"] or None,
        action=typed["action"] or None,
        entity_type=typed["entity_type"] or None,
        entity_id=typed["entity_id"] or None,
        since=since,
        until=until,
    )
    return FilterInput(typed, wanted, before_seq, errors)


def _day(text: str, name: str, errors: dict[str, str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[name] = f"“{text}” is not a date; write it as YYYY-MM-DD, e.g. 2026-12-01"
        return None


def _seq(text: str, errors: dict[str, str]) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= _INT64_MAX:
        errors["before"] = "is not an entry number; use the Older and Newer links"
        return None
    return int(text)
