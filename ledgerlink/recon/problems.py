"""What a reconciliation use case refuses, in words the person asking can act on.

One exception for the product layer (scopes, imports, resolutions, periods): ``field``
names the input, ``message`` the reason and the fix. The API turns it into a 422 (a 404
when ``missing``), the portal into a message on the page, the CLI into a red line.
"""

from __future__ import annotations

from ledgerlink.mapping.errors import SpecError


class ReconRefused(ValueError):
    def __init__(
        self, field: str, message: str, *, missing: bool = False, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        #: the thing asked for does not exist (a 404, not a refusal)
        self.missing = missing
        #: for a statement: the line of the file the reason is about
        self.line = line

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.message}"


class RulesSpecError(SpecError):
    """The matching rules spec cannot be compiled.

    Loaded by the mapping specs' machinery (the same problems with their lines), but a
    user reading the refusal must see it is about the reconciliation rules they uploaded,
    not a mapping spec: the API titles it so (``web/domain_problems.py``).
    """
