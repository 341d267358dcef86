"""The PayTrace simulator cut off for a while (a network partition that heals by itself).

The soak (`bench/soak.py`) partitions ledgerlink from PayTrace for a minute; the fault must
cut every connection for exactly that long and then let requests through again, without
anyone having to clear it.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ledgerlink.clock import ManualClock
from ledgerlink.sandbox.faults import FaultInjector
from tests.integration.sandbox.test_paytrace_api import running


def test_a_partition_cuts_every_connection_until_it_heals(tmp_path: Path) -> None:
    clock = ManualClock()
    with running(tmp_path, faults=FaultInjector(clock=clock)) as paytrace:
        paytrace.token()
        put = paytrace.http.put("/_sandbox/faults", json={"partition_seconds": 60})
        assert put.status_code == 200
        assert put.json()["partition_remaining_seconds"] == 60
        for _ in range(3):
            with pytest.raises(httpx.TransportError):
                paytrace.post("/v1/customer/export", {"customer_id": "C00001"})
        clock.advance(59)
        with pytest.raises(httpx.TransportError):
            paytrace.http.post("/oauth/token", data={"grant_type": "password"})
        clock.advance(1)
        assert paytrace.post("/v1/customer/export", {"customer_id": "C00001"}).status_code == 200
        state = paytrace.http.get("/_sandbox/faults").json()
        assert state["partition_remaining_seconds"] == 0
        assert state["counts"]["drop"] == 4
