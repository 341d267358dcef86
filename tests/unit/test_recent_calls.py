"""The dashboard's memory of recent upstream calls: failures count while they are recent,
only against the server they went to, and a recovered upstream reads as working again."""

from __future__ import annotations

from ledgerlink.clock import ManualClock
from ledgerlink.connectors.recent_calls import CallLog, origin_of

LIVE = origin_of("https://api.paytrace.com")
TYPO = origin_of("https://api.paytrace.con:8443/v1")


def test_dropped_connections_make_the_system_failing_until_they_age_out() -> None:
    clock = ManualClock()
    calls = CallLog(clock=clock)
    calls.note("paytrace", "ok", LIVE)
    calls.note("paytrace", "connection_dropped", LIVE)
    recent = calls.recent("paytrace", LIVE)
    assert recent is not None
    assert recent.failing
    assert "1 of 2 calls in the last 5 min failed" in recent.describe()
    assert "cut the connection before answering" in recent.describe()
    clock.advance(calls.window.total_seconds() + 1)
    assert calls.recent("paytrace", LIVE) is None


def test_a_recovered_system_is_not_failing_and_refusals_are_not_failures() -> None:
    calls = CallLog(clock=ManualClock())
    calls.note("paytrace", "connection_error", LIVE)
    for outcome in ("ok", "rejected", "notfound", "ok"):
        calls.note("paytrace", outcome, LIVE)
    recent = calls.recent("paytrace", LIVE)
    assert recent is not None
    assert not recent.failing


def test_a_test_of_a_mistyped_address_does_not_mark_the_live_server_failing() -> None:
    calls = CallLog(clock=ManualClock())
    calls.note("paytrace", "ok", LIVE)
    calls.note("paytrace", "connection_error", TYPO)
    live = calls.recent("paytrace", LIVE)
    assert live is not None
    assert not live.failing
    typo = calls.recent("paytrace", TYPO)
    assert typo is not None
    assert typo.failing
