"""Member numbers as SBC contact references, which hold at most 10 characters.

SBC's ``Contact.reference`` is what finance sees and searches in Sage, and ledgerlink keeps
the member number there. The published v3.1 schema limits it to 10 characters (Sage
refuses longer ones: 422 ``is too long (maximum is 10 characters)`` on ``reference``),
while member numbers may be longer (up to 20). So:

* A member number of **10 characters or fewer** is the reference, as it always was.
* A **longer** one gets a short reference derived from it, and the full number is kept in
  the contact's ``notes`` (free text of up to 4,000 characters, the only field of the
  schema with room for it that Sage shows users; ``source_guid`` is meant for a GUID) on
  a line of its own: ``Member number: M123456789012``. Whatever else the notes say is kept.

The short reference (:func:`candidates`) is the first four letters or digits of the
number, upper-cased, followed by six characters of the base-32 SHA-256 digest of the
number: ``M123456789012`` → ``M123FCLVCF``. It is deterministic, so the same
member always gets the same reference and can be found again by it. It is checked for
collisions before use: if another contact (another member, or one typed by hand) already
holds it, the next candidate is tried, whose digest is taken of ``number#1``, ``number#2``
and so on. Looking a member up walks the same candidates in the same order and stops at
the first one nobody holds.

Reading a contact, its member number is the ``Member number:`` line of its notes when there
is one, else its reference; so linking, sync and look-ups all see the full number.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from typing import Final

#: ``Contact.reference`` in the published v3.1 schema.
REFERENCE_LIMIT: Final = 10
#: ``Contact.notes`` in the published v3.1 schema.
NOTES_LIMIT: Final = 4000
#: How many candidates are tried before giving up (each a search in Sage).
MAX_CANDIDATES: Final = 8
NOTE_LABEL: Final = "Member number:"
_HEAD: Final = 4
_NOTE_LINE = re.compile(rf"^{re.escape(NOTE_LABEL)}[ \t]*(\S+)[ \t]*$", re.MULTILINE)


def fits(number: str) -> bool:
    """Whether ``number`` can be the reference as it is."""
    return len(number) <= REFERENCE_LIMIT


def candidates(number: str) -> Iterator[str]:
    """The references ``number`` may take, in the order they are tried."""
    if fits(number):
        yield number
        return
    head = "".join(ch for ch in number.upper() if ch.isalnum())[:_HEAD]
    for attempt in range(MAX_CANDIDATES):
        salted = number if attempt == 0 else f"{number}#{attempt}"
        digest = base64.b32encode(hashlib.sha256(salted.encode()).digest()).decode()
        yield head + digest[: REFERENCE_LIMIT - len(head)]


def short_reference(number: str) -> str:
    """The first candidate: the reference ``number`` gets unless another contact holds it."""
    return next(candidates(number))


def member_number(reference: str, notes: str | None) -> str:
    """The member number of a contact: its notes' ``Member number:`` line, else its
    reference."""
    found = _NOTE_LINE.search(notes or "")
    return found.group(1) if found else reference


def with_member_number(notes: str | None, number: str) -> str:
    """``notes`` holding ``number`` on its ``Member number:`` line (added first, or
    replaced), everything else kept, cut to what SBC holds."""
    line = f"{NOTE_LABEL} {number}"
    text = notes or ""
    if _NOTE_LINE.search(text):
        updated = _NOTE_LINE.sub(line, text, count=1)
    else:
        updated = f"{line}\n{text}" if text else line
    return updated[:NOTES_LIMIT]
