"""The one error a statement import raises: which line, what is wrong, what to do."""

from __future__ import annotations


class StatementError(ValueError):
    """A statement file that cannot be imported; nothing of it is kept.

    ``line`` is the 1-based line in the file (None when the fault is the file as a whole),
    ``reason`` says what is wrong in the bank's own terms and ``fix`` what the user can do.
    """

    def __init__(self, line: int | None, reason: str, fix: str) -> None:
        self.line = line
        self.reason = reason
        self.fix = fix
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{reason}; {fix}")
