"""An SBC access token counts as fresh until RENEW_MARGIN before Sage's ``expires_in``,
judged on the OAuth client's clock: the test moves the clock, nothing sleeps."""

from __future__ import annotations

from datetime import timedelta

import httpx

from ledgerlink.clock import ManualClock
from ledgerlink.connectors.sbc.oauth import RENEW_MARGIN, SbcOAuth


def _oauth(clock: ManualClock) -> SbcOAuth:
    def token_endpoint(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "access_token": "access-1",
                "expires_in": 300,
                "refresh_token": "refresh-1",
                "refresh_token_expires_in": 31 * 86_400,
            },
        )

    return SbcOAuth(
        client_id="id",
        client_secret="secret",
        authorize_url="https://sage.test/auth",
        token_url="https://sage.test/token",
        redirect_uri="http://127.0.0.1/callback",
        transport=httpx.MockTransport(token_endpoint),
        clock=clock,
    )


def test_token_lifetimes_count_from_the_clocks_now() -> None:
    clock = ManualClock()
    tokens = _oauth(clock).exchange_code("code")
    assert tokens.access_expires_at == clock.now() + timedelta(seconds=300)
    assert tokens.refresh_expires_at == clock.now() + timedelta(days=31)


def test_a_token_is_renewed_ahead_of_its_expiry_not_after_it() -> None:
    clock = ManualClock()
    tokens = _oauth(clock).exchange_code("code")
    clock.advance(300 - RENEW_MARGIN.total_seconds() - 1)
    assert tokens.fresh(clock.now())
    clock.advance(1)
    assert not tokens.fresh(clock.now())  # 45 s before Sage would refuse it
