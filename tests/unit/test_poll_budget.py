"""The polling share of a ledger connection's requests a minute, and the interval it
stretches to (pure: no I/O)."""

from __future__ import annotations

import pytest

from ledgerlink.sync import poll_budget


def test_sbcs_hundred_requests_a_minute_are_split_with_headroom_left_free() -> None:
    split = poll_budget.split(100, interval=30, effective=30, last_requests=3)
    assert (split.polling, split.payments, split.full_syncs, split.free) == (20, 30, 40, 10)
    assert split.polling_now == 6.0
    assert split.sentences()[0] == (
        "Of the 100 requests a minute this connection may send: polling up to 20, "
        "payments 30, full syncs 40, free 10."
    )


def test_the_interval_stretches_only_when_polls_would_use_more_than_their_share() -> None:
    assert poll_budget.stretched_interval(30, 3, 100) == 30  # 6 a minute of 20
    assert poll_budget.stretched_interval(5, 3, 100) == 9  # 36 a minute: 9 s keeps 20
    assert poll_budget.stretched_interval(5, 2000, 100) == poll_budget.MAX_INTERVAL  # capped
    assert poll_budget.stretched_interval(5, 3, None) == 5  # no limit (Sage 500 over SQL)


def test_a_kind_without_a_rate_limit_setting_is_not_limited() -> None:
    assert poll_budget.rate_limit({}, {"company_id": ""}) is None
    assert poll_budget.rate_limit({}, {"rate_limit_per_minute": 100}) == 100
    assert (
        poll_budget.rate_limit({"rate_limit_per_minute": 0}, {"rate_limit_per_minute": 100}) is None
    )


@pytest.mark.parametrize("typed", ["4", "3601", "", "thirty", "-5", "7.5"])
def test_an_interval_outside_5_to_3600_seconds_is_refused_saying_what_to_type(typed: str) -> None:
    with pytest.raises(poll_budget.IntervalInvalid, match="between 5 and 3600"):
        poll_budget.parse_interval(typed)
    assert poll_budget.parse_interval(" 45 ") == 45
