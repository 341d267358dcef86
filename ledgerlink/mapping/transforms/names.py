"""People's names between systems that keep first and last names (the member registry)
and systems that keep one name (an SBC contact, a Sage 500 ``CustName``)."""

from __future__ import annotations

import re
from typing import Final

_SPACES: Final = re.compile(r"\s+")


def clean_name(value: str | None) -> str:
    return _SPACES.sub(" ", value or "").strip()


def full_name(first: str | None, last: str | None) -> str:
    return " ".join(part for part in (clean_name(first), clean_name(last)) if part)


def split_name(full: str | None, known_last: str | None = None) -> tuple[str, str]:
    """``"Ada van der Berg"`` → (first, last). When the linked record's last name is
    known and the full name ends with it, that split is kept (so multi-word last names
    survive a round trip); otherwise the last word is the last name."""
    text = clean_name(full)
    last = clean_name(known_last)
    if last and (text == last or text.endswith(" " + last)):
        return text[: len(text) - len(last)].strip(), last
    first, _, tail = text.rpartition(" ")
    return (first, tail) if first else ("", tail)
