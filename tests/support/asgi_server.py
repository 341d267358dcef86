"""Serve an ASGI app with uvicorn on a loopback port in a background thread.

Integration tests talk to simulators over a real socket (real HTTP parsing, real
connection handling, so dropped connections and timeouts are real too).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.support.postgres import _free_port
from tests.support.waiting import wait_until


@contextmanager
def serve_in_thread(app: Any, *, timeout: float = 10.0) -> Iterator[str]:
    """Yield ``http://127.0.0.1:<port>`` while ``app`` is being served."""
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="auto"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()

    def started() -> bool:
        if not thread.is_alive():
            raise RuntimeError(f"test server on port {port} stopped before it started")
        return bool(server.started)

    wait_until(started, timeout=timeout, interval=0.01, what=f"the test server on port {port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
