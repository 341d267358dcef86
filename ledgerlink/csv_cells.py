"""CSV cells a spreadsheet cannot run: formula injection neutralised wherever ledgerlink
writes CSV for people (member export, sync run records).

A spreadsheet (Excel, LibreOffice, Google Sheets) runs a cell that starts with ``=``,
``+``, ``-`` or ``@`` as a formula, so a member named ``=HYPERLINK("http://..."&A1)``
could send an operator's data elsewhere when they open the export. OWASP's CSV Injection
rule: a cell that begins with one of those characters, with a TAB or a carriage return,
is written with a single quote ``'`` in front, which makes the spreadsheet show it as
text. :func:`needs_quote` applies it a little more widely:

* also after leading whitespace or invisible format characters (`` =1+1``, a no-break
  space, a zero-width space), which some spreadsheets skip;
* also the look-alikes that normalise (NFKC) to those characters (the full-width
  U+FF1D, U+FF0B, U+FF0D and U+FF20, small and superscript forms) and the minus sign U+2212;
* also a cell starting with a line feed or NUL (ASVS 1.2.10 names NUL);
* and a cell that *already* starts with quotes before such a character (``'=1``), so
  that reading the quote back is never ambiguous (below).

**Numbers stay readable.** A value ledgerlink holds as a number (``int``, ``Decimal``,
``float``) is written as it is: ``-12.50`` is data, not a formula, and a spreadsheet
shows it as a number. Text is quoted even when it looks like a number (a member named
``+1`` or ``-2+3``), except in the columns a writer is told hold numbers it validated
itself (the member export's E.164 phone, ``+14155550100``, which a spreadsheet can only
read as that number).

**Reading back.** :func:`unescape_cell` undoes exactly what :func:`safe_cell` did: a cell
that starts with ``'`` followed by what :func:`needs_quote` would have quoted loses that
one quote. So an export re-imports as the same values (``'=1`` → ``=1``, ``''=1`` →
``'=1``), and a cell such as ``'Brien`` is left alone. The one file this can misread is
one ledgerlink did not write that has a cell starting ``'=`` (or ``'+``...) meant
literally: it is read as ``=``... .

Not for machine-read CSV: the Sage 500 drop files (``connectors/sage500/flat_files.py``)
are read by the ERP's import, which would store the quote in the customer's name and
could not read ``'-12.50`` as an amount; they are written plainly.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Collection, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

#: A spreadsheet reads a cell starting with one of these as a formula.
FORMULA_STARTS: Final = frozenset("=+-@")
#: A cell starting with one of these is quoted whatever follows (OWASP: TAB, CR; ASVS: NUL).
_ALWAYS_QUOTED: Final = frozenset("\t\r\n\0")
_MINUS_SIGN: Final = "\u2212"
QUOTE: Final = "'"


def _is_formula_start(char: str) -> bool:
    return (
        char in FORMULA_STARTS
        or char == _MINUS_SIGN
        or unicodedata.normalize("NFKC", char)[:1] in FORMULA_STARTS
    )


def needs_quote(text: str) -> bool:
    """True when a spreadsheet could take ``text`` for a formula (see the module's rule)."""
    rest = text.lstrip(QUOTE)
    if not rest:
        return False
    first = rest[0]
    if first in _ALWAYS_QUOTED or first in FORMULA_STARTS:
        return True
    if first.isascii() and not first.isspace():
        return False  # the common case, decided without a look at Unicode properties
    for char in rest:
        if char.isspace() or unicodedata.category(char) == "Cf":
            continue
        return _is_formula_start(char)
    return False


def _is_plain_number(text: str) -> bool:
    """``+14155550100``, ``-12.50``: an optional sign, digits, an optional fraction."""
    body = text[1:] if text[:1] in ("+", "-") else text
    whole, _, fraction = body.partition(".")
    return (
        whole.isascii()
        and whole.isdigit()
        and (not fraction or (fraction.isascii() and fraction.isdigit()))
    )


def safe_cell(value: object, *, plain_number: bool = False) -> str:
    """``value`` as a CSV cell no spreadsheet runs: text that could be a formula gets a
    leading ``'``; numbers (int, Decimal, float) are written as they are, and so is text
    that is a plain number when ``plain_number`` says the column holds numbers."""
    if value is None:
        return ""
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    text = str(value)
    if plain_number and _is_plain_number(text):
        return text
    return QUOTE + text if needs_quote(text) else text


def unescape_cell(text: str) -> str:
    """The value :func:`safe_cell` wrote ``text`` for (one added quote taken off)."""
    if text.startswith(QUOTE) and needs_quote(text[1:]):
        return text[1:]
    return text


class SafeCsvWriter:
    """A ``csv.writer`` whose every cell goes through :func:`safe_cell`.

    ``plain_number_columns`` are the positions of text columns that hold numbers ledgerlink
    validated itself (written unquoted when they are plain numbers).
    """

    def __init__(
        self,
        stream: SupportsWrite[str],
        *,
        plain_number_columns: Collection[int] = (),
        **fmtparams: Any,
    ) -> None:
        self._writer = csv.writer(stream, **fmtparams)
        self._plain = frozenset(plain_number_columns)

    def writerow(self, row: Iterable[object]) -> Any:
        return self._writer.writerow(
            [safe_cell(v, plain_number=i in self._plain) for i, v in enumerate(row)]
        )

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)
