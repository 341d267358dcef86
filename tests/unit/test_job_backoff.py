"""Retry backoff: full jitter under an exponential cap (no I/O)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.jobs.registry import RetryPolicy


class MaxJitter:
    """The top of the jitter window, every time."""

    def uniform(self, a: float, b: float) -> float:
        return b


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0, max_value=3600, allow_nan=False),
    ceiling=st.floats(min_value=0, max_value=86_400, allow_nan=False),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_delay_stays_within_the_exponential_cap(
    attempt: int, base: float, ceiling: float, seed: int
) -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=base, max_delay=ceiling)
    delay = policy.delay_for(attempt, random.Random(seed))
    cap = min(ceiling, base * 2.0 ** min(attempt - 1, 64))
    assert 0.0 <= delay <= cap


def test_the_cap_doubles_per_attempt_until_max_delay() -> None:
    policy = RetryPolicy(base_delay=2.0, max_delay=600.0)
    caps = [policy.delay_for(n, MaxJitter()) for n in range(1, 11)]
    assert caps == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600]


def test_delays_are_spread_over_the_window_not_bunched_at_its_top() -> None:
    policy = RetryPolicy(base_delay=10.0, max_delay=10.0)
    rng = random.Random(7)
    delays = [policy.delay_for(1, rng) for _ in range(1000)]
    assert min(delays) < 1.0
    assert max(delays) > 9.0
    assert 4.0 < sum(delays) / len(delays) < 6.0


def test_attempts_are_counted_from_one() -> None:
    with pytest.raises(ValueError, match="1-based"):
        RetryPolicy().delay_for(0)


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"base_delay": -1.0}, {"max_delay": -0.5}])
def test_a_policy_that_cannot_work_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
