"""Accounting periods: which dates a posting may carry.

A ledger has financial years (derived from its year-end date) and a lockdown date on or
before which nothing may be posted. Administrators choose which financial years
ledgerlink may post into; everything else is refused with a message saying why and what
to do, before anything is sent to the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True, slots=True)
class FinancialYear:
    start: date
    end: date

    @property
    def label(self) -> str:
        if self.start.year == self.end.year:
            return f"FY {self.end.year} ({self.start.isoformat()} to {self.end.isoformat()})"
        return f"FY {self.start.year}/{self.end.year % 100:02d} ({self.start} to {self.end})"

    @property
    def key(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    @classmethod
    def from_key(cls, key: str) -> FinancialYear:
        start, _, end = key.partition("..")
        return cls(date.fromisoformat(start), date.fromisoformat(end))


def _shift_year(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def financial_years(
    year_end: date, accounts_start: date | None, ahead: int = 1
) -> list[FinancialYear]:
    """Financial years from the one containing ``accounts_start`` to ``ahead`` years after
    the one ending on ``year_end``.

    Every year end is ``year_end`` shifted by whole years (not the previous end shifted by
    one), so a year ending on 29 February keeps ending on 29 February in leap years.
    """
    floor = accounts_start or _shift_year(year_end, -3)
    back = 0
    while _shift_year(year_end, -(back + 1)) >= floor:
        back += 1
    return [
        FinancialYear(_shift_year(year_end, k - 1) + timedelta(days=1), _shift_year(year_end, k))
        for k in range(-back, ahead + 1)
    ]


@dataclass(frozen=True, slots=True)
class PostingWindow:
    """What an administrator allowed, plus what the ledger locked."""

    allowed: tuple[FinancialYear, ...]
    lockdown: date | None = None

    def refusal(self, day: date) -> str | None:
        """Why a posting dated ``day`` may not be made, or None if it may."""
        if self.lockdown is not None and day <= self.lockdown:
            return (
                f"{day.isoformat()} is on or before the ledger's lockdown date "
                f"{self.lockdown.isoformat()}; post it in an open period or ask the "
                "accountant to move the lockdown date"
            )
        if self.allowed and not any(year.contains(day) for year in self.allowed):
            chosen = ", ".join(year.label for year in self.allowed)
            return (
                f"{day.isoformat()} is outside the accounting periods ledgerlink may post to "
                f"({chosen}); an administrator can allow that period under Accounting "
                "Integration"
            )
        return None
