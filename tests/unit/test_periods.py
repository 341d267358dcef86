"""Postings are refused outside the chosen financial years and in locked periods."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

from hypothesis import example, given
from hypothesis import strategies as st

from ledgerlink.domain.periods import FinancialYear, PostingWindow, financial_years


def test_calendar_years_are_derived_from_the_year_end() -> None:
    years = financial_years(date(2026, 12, 31), date(2025, 1, 1))
    assert [y.key for y in years] == [
        "2025-01-01..2025-12-31",
        "2026-01-01..2026-12-31",
        "2027-01-01..2027-12-31",
    ]


def test_a_june_year_end_gives_july_to_june_years() -> None:
    years = financial_years(date(2026, 6, 30), date(2025, 9, 1))
    assert years[0] == FinancialYear(date(2025, 7, 1), date(2026, 6, 30))
    assert years[0].label == "FY 2025/26 (2025-07-01 to 2026-06-30)"


@given(year_end=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)))
@example(year_end=date(2000, 2, 29))  # a year ending on a leap day (found by hypothesis)
def test_derived_years_are_contiguous_and_a_year_long(year_end: date) -> None:
    years = financial_years(year_end, None)
    for earlier, later in pairwise(years):
        assert (later.start - earlier.end).days == 1
    assert any(y.end == year_end for y in years)


def test_a_posting_in_the_locked_period_says_why_and_what_to_do() -> None:
    window = PostingWindow((), lockdown=date(2025, 12, 31))
    refusal = window.refusal(date(2025, 12, 31))
    assert refusal is not None
    assert "lockdown date 2025-12-31" in refusal
    assert window.refusal(date(2026, 1, 1)) is None


def test_a_posting_outside_the_chosen_years_is_refused() -> None:
    window = PostingWindow((FinancialYear(date(2026, 1, 1), date(2026, 12, 31)),))
    refusal = window.refusal(date(2027, 1, 2))
    assert refusal is not None
    assert "outside the accounting periods" in refusal
    assert window.refusal(date(2026, 6, 1)) is None
