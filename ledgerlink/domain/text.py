"""Text a person or a system sends us that cannot be stored or shown as is.

PostgreSQL refuses NUL in text (the whole transaction fails), terminals and logs act on
escape sequences, and a lone UTF-16 surrogate cannot be encoded at all. One rule for all
of them, used by the API's input types, CSV imports and report parsers: tab, line feed
and carriage return are text; every other C0 control, DEL and lone surrogates are not.
"""

from __future__ import annotations

import re

#: The refused characters as an ECMA-262 class body for JSON Schema (lone surrogates cannot
#: be written in a pattern; JSON documents rarely carry them and the validator still
#: refuses them).
_REFUSED_CLASS = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f"

#: The rule as a pattern the whole text matches.
PATTERN = rf"^[^{_REFUSED_CLASS}]*$"

#: The rule as a pattern no part of the text may match: ``{"not": {"pattern": REFUSED}}``
#: accepts exactly the strings ``PATTERN`` accepts.
REFUSED = rf"[{_REFUSED_CLASS}]"

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def control_character_problem(value: str) -> str | None:
    """Why ``value`` cannot be accepted as text, or ``None`` when it can."""
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    char = found.group()
    code = ord(char)
    if code == 0:
        name = "a NUL character (\\x00)"
    elif 0xD800 <= code <= 0xDFFF:
        name = f"a lone surrogate (\\u{code:04x})"
    else:
        name = f"the control character \\x{code:02x}"
    return f"contains {name} at position {found.start() + 1}; remove it"
