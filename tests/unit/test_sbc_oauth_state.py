"""The OAuth state ties a Sage consent to our connection and to this browser."""

from __future__ import annotations

import time

from ledgerlink.connectors.sbc.consent import make_state, read_state

KEY = b"k" * 32


def test_a_fresh_state_from_this_browser_names_the_connection() -> None:
    assert read_state(KEY, make_state(KEY, 7, "nonce-1"), "nonce-1") == 7


def test_a_state_started_in_another_browser_is_refused() -> None:
    assert read_state(KEY, make_state(KEY, 7, "nonce-1"), "nonce-2") is None
    assert read_state(KEY, make_state(KEY, 7, "nonce-1"), None) is None


def test_an_expired_state_is_refused() -> None:
    old = make_state(KEY, 7, "n", now=time.time() - 3600)
    assert read_state(KEY, old, "n") is None


def test_a_state_signed_with_another_key_or_edited_is_refused() -> None:
    assert read_state(b"x" * 32, make_state(KEY, 7, "n"), "n") is None
    assert read_state(KEY, "bm90IGEgc3RhdGU", "n") is None
    assert read_state(KEY, "%%%", "n") is None
