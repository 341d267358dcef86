"""A mapping version's reference in words a finance user reads.

Runs, postings and the audit record the exact reference of the spec version they used
(``member_to_sbc_contact@v3``, ``…@config:1a2b3c4d5e6f``, ``…@package:28c8342c9226``): it
is what makes a result reproducible, but it is an identifier, not something to read. Pages
show :attr:`VersionLabel.text` ("v3 saved by ana@example.org", "shipped version (28c8342)")
and keep :attr:`VersionLabel.ref` at hand (a tooltip, a detail) for whoever needs the id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: ``name@v3`` (saved in ledgerlink), ``name@config:<sha256 prefix>`` (the configuration
#: directory's file) or ``name@package:<sha256 prefix>`` (shipped with ledgerlink).
_REF = re.compile(
    r"^(?P<name>[^@\s]+)@(?:v(?P<version>\d+)|(?P<origin>package|config):(?P<digest>[0-9a-f]+))$"
)
#: How many digits of a text's digest to show (as short commit ids are shown).
SHORT_DIGEST = 7


@dataclass(frozen=True)
class VersionLabel:
    """``text`` to show; ``ref`` the exact version id; ``name`` the spec (for a link)."""

    text: str
    ref: str
    name: str = ""


def describe_version(ref: str, author: str | None = None) -> VersionLabel:
    """``ref`` in words; ``author`` (who saved a database version) when known. A reference
    of another form (a draft, a future kind) is shown as it is."""
    found = _REF.match(ref.strip())
    if found is None:
        return VersionLabel(ref, ref)
    name = found["name"]
    if found["version"] is not None:
        text = f"v{int(found['version'])}" + (f" saved by {author}" if author else "")
        return VersionLabel(text, ref, name)
    digest = found["digest"][:SHORT_DIGEST]
    where = "shipped version" if found["origin"] == "package" else "configuration file version"
    return VersionLabel(f"{where} ({digest})", ref, name)


def saved_version(ref: str) -> tuple[str, int] | None:
    """``(name, version)`` of a version saved in ledgerlink (whose author can be looked
    up), else None."""
    found = _REF.match(ref.strip())
    if found is None or found["version"] is None:
        return None
    return found["name"], int(found["version"])
