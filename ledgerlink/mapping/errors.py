"""What goes wrong while loading or running a mapping, said so a finance user can fix it.

Two families: :class:`SpecError` is raised when a spec cannot be loaded (it names the file,
line, field and what is allowed); :class:`FieldError` is *collected* while a record is
mapped, one per target field that could not be computed, so one bad record never stops a
preview or a run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """A target field that could not be computed for one record."""

    field: str
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "fix": self.fix}


class MappingValueError(ValueError):
    """Raised by a function while mapping one value; turned into a :class:`FieldError`."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


@dataclass(frozen=True, slots=True)
class SpecProblem:
    """One thing wrong with a spec file: where it is and what would be accepted."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )

    def as_dict(self) -> dict[str, str | int | None]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


class SpecError(ValueError):
    """A spec (or table) that cannot be loaded; ``problems`` lists every fault found."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(shown + more)


class ExpressionError(ValueError):
    """An expression that cannot be parsed or uses something not on the allowed list."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.message = message
        self.column = column
        super().__init__(f"{message} (at column {column})" if column is not None else message)
