"""A separate process whose SBC call was refused (401): many at once must refresh once."""

from __future__ import annotations

from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any


def main(settings: dict[str, Any], connection_id: int, barrier: Barrier, out: Queue[str]) -> None:
    """Process entry point: put the token (or the error) on ``out``."""
    try:
        out.put(access_token(settings, connection_id, barrier))
    except Exception as exc:  # the test shows what went wrong in the child
        out.put(f"error: {exc!r}")


def access_token(settings: dict[str, Any], connection_id: int, barrier: Barrier) -> str:
    from ledgerlink.connectors.factory import sbc_token_vault
    from ledgerlink.runtime import Runtime
    from ledgerlink.settings import Settings
    from ledgerlink.store.models import Connection

    runtime = Runtime(Settings(**settings, _env_file=None))  # type: ignore[call-arg]
    with runtime.db.read() as session:
        connection = session.get(Connection, connection_id)
        assert connection is not None
        vault = sbc_token_vault(runtime, connection)
    rejected = vault.access_token()  # the stored token, which Sage has just expired
    barrier.wait(timeout=30)
    try:
        # Every worker got a 401 with that token at the same moment: all ask to renew.
        return vault.renew_after_rejection(rejected)
    finally:
        runtime.db.dispose()
