"""Rate limits of the anonymous push routes: per client address, per PayTrace connection,
exact counts, a Retry-After to give, and settings refused with the notation to use."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ledgerlink.settings import Settings
from ledgerlink.web.inbound_limits import InboundLimits


def test_an_address_over_its_allowance_is_refused_while_others_are_not() -> None:
    limits = InboundLimits("3/minute", "")
    assert [limits.from_address("203.0.113.9") for _ in range(3)] == [None] * 3
    refused = limits.from_address("203.0.113.9")
    assert refused is not None
    assert refused.what == "more than 3 pushes per 60 seconds from this address"
    assert 1 <= refused.retry_after <= 60
    assert limits.from_address("198.51.100.7") is None


def test_a_connection_is_limited_whichever_addresses_the_posts_come_from() -> None:
    limits = InboundLimits("", "2/minute")
    assert limits.for_connection(7) is None
    assert limits.for_connection(7) is None
    refused = limits.for_connection(7)
    assert refused is not None
    assert "for PayTrace connection 7" in refused.what
    assert limits.for_connection(8) is None
    assert all(limits.from_address("203.0.113.9") is None for _ in range(1000))  # no limit


def test_a_limit_setting_that_is_not_a_rate_names_the_notation() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(inbound_limit_per_address="lots", _env_file=None)  # type: ignore[call-arg]
    assert "'100/10 seconds'" in str(refused.value)
