"""Customer ID harmonisation: the member number, the Sage 500 ``CustID``, the SBC contact
``reference`` and the PayTrace ``customer_id`` of one person, through their links.

Each system's IDs follow a format (prefix, zero-padded number, case, maximum length);
:func:`normalise_id` brings a typed or imported ID into that form (``" m42 "`` →
``"M00042"``). :func:`harmonise` first looks the person up in the links; without a link
it derives the other system's ID from the number (``M00042`` → ``C00042``), which is how
ledgerlink names customers it creates. IDs that exist only upstream (``sbc_contact_id``,
``sage500_cust_key``) can only come from a link.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from ledgerlink.mapping.errors import MappingValueError

Case = Literal["upper", "lower", "keep"]


@dataclass(frozen=True, slots=True)
class IdFormat:
    prefix: str = ""
    width: int = 0  # zero-pad the number to this many digits (0: no padding)
    case: Case = "upper"
    max_length: int = 50


#: ``sbc`` is the contact ``reference`` (which holds the member number); ``paytrace`` is the
#: PayTrace ``customer_id``, equal to the Sage 500 ``CustID`` (varchar(12)).
DEFAULT_FORMATS: Final[dict[str, IdFormat]] = {
    "member": IdFormat("M", 5, "upper", 20),
    "sbc": IdFormat("M", 5, "upper", 50),
    "sage500": IdFormat("C", 5, "upper", 12),
    "paytrace": IdFormat("C", 5, "upper", 50),
}

#: Identifiers that only the upstream system assigns: known through links, never derived.
LINK_ONLY: Final = frozenset({"sbc_contact_id", "sage500_cust_key"})

SYSTEMS: Final = tuple(DEFAULT_FORMATS) + tuple(sorted(LINK_ONLY))

_SPACES = re.compile(r"\s+")


def normalise_id(value: Any, fmt: IdFormat, system: str = "") -> str:
    """``value`` in ``fmt``'s form; IDs that do not follow the pattern keep their text
    (trimmed, cased), because legacy customers often have hand-made IDs."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MappingValueError(f"the {system or 'customer'} ID is empty")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MappingValueError(f"a customer ID must be text, got {value!r}")
    text = _SPACES.sub("", str(value))
    if fmt.case == "upper":
        text = text.upper()
    elif fmt.case == "lower":
        text = text.lower()
    prefix = fmt.prefix
    body = text[len(prefix) :] if prefix and text.upper().startswith(prefix.upper()) else text
    if body.isdigit():
        text = prefix + body.zfill(fmt.width)
    if len(text) > fmt.max_length:
        raise MappingValueError(
            f"{system or 'customer'} ID {text!r} is longer than {fmt.max_length} characters",
            "shorten the ID (or change the id_formats of the spec)",
        )
    return text


def number_of(value: str, fmt: IdFormat) -> str | None:
    """The numeric part of a normalised ID of ``fmt``, or ``None`` if it has none."""
    body = value[len(fmt.prefix) :] if value.upper().startswith(fmt.prefix.upper()) else ""
    return body if body.isdigit() else None


class CustomerLinks(Protocol):
    """The store of links between one person's IDs in each system."""

    def linked(self, system: str, customer_id: str) -> Mapping[str, str] | None:
        """Every ID of the person whose ``system`` ID is ``customer_id`` (normalised)."""
        ...


class LinkTable:
    """Links held in memory (tests, previews, a snapshot the store hands a run)."""

    def __init__(
        self,
        rows: Iterable[Mapping[str, str]],
        formats: Mapping[str, IdFormat] = DEFAULT_FORMATS,
    ) -> None:
        self._index: dict[tuple[str, str], Mapping[str, str]] = {}
        for row in rows:
            clean = {k: str(v) for k, v in row.items() if v not in (None, "")}
            for system, value in clean.items():
                fmt = formats.get(system)
                key = normalise_id(value, fmt, system) if fmt else value
                self._index[(system, key)] = clean

    def linked(self, system: str, customer_id: str) -> Mapping[str, str] | None:
        return self._index.get((system, customer_id))


NO_LINKS: Final = LinkTable(())


@dataclass(frozen=True, slots=True)
class HarmonisedId:
    value: str
    how: Literal["same", "linked", "derived"]


def harmonise(
    value: Any,
    from_system: str,
    to_system: str,
    links: CustomerLinks = NO_LINKS,
    formats: Mapping[str, IdFormat] = DEFAULT_FORMATS,
) -> HarmonisedId:
    """The ``to_system`` ID of the customer whose ``from_system`` ID is ``value``."""
    for system in (from_system, to_system):
        if system not in formats and system not in LINK_ONLY:
            raise MappingValueError(
                f"unknown system {system!r}; use one of "
                + ", ".join(sorted(set(formats) | LINK_ONLY))
            )
    source_fmt = formats.get(from_system)
    key = normalise_id(value, source_fmt, from_system) if source_fmt else str(value).strip()
    target_fmt = formats.get(to_system)
    if from_system == to_system:
        return HarmonisedId(key, "same")
    row = links.linked(from_system, key)
    if row is not None and row.get(to_system):
        linked = row[to_system]
        return HarmonisedId(
            normalise_id(linked, target_fmt, to_system) if target_fmt else linked, "linked"
        )
    if target_fmt is None or source_fmt is None:
        raise MappingValueError(
            f"{from_system} customer {key!r} is not linked to a {to_system} record",
            "link the member to the customer account first (Members → Link)",
        )
    number = number_of(key, source_fmt)
    if number is None:
        raise MappingValueError(
            f"{from_system} ID {key!r} does not follow the {source_fmt.prefix}+number pattern, "
            f"so its {to_system} ID cannot be derived",
            "link the records explicitly, or fix the ID",
        )
    derived = target_fmt.prefix + number.lstrip("0").zfill(target_fmt.width)
    return HarmonisedId(normalise_id(derived, target_fmt, to_system), "derived")
