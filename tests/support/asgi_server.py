"""Serve an ASGI app with uvicorn on a loopback port in a background thread.

Integration tests talk to simulators over a real socket (real HTTP parsing, real
connection handling, so dropped connections and timeouts are real too).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import uvicorn

from tests.support.postgres import _free_port
from tests.support.waiting import wait_until

#: How long a stop waits for open connections and requests to finish before it shuts the
#: application down anyway (uvicorn, by default, waits for ever).
_DRAIN_SECONDS = 10.0


class _PromptServer(uvicorn.Server):
    """uvicorn's server, stopping as soon as it is asked.

    uvicorn looks at ``should_exit`` once every 0.1 s, then sleeps 0.1 s after asking
    its connections to close, and then checks them every 0.1 s: 0.15 to 0.25 s for each
    simulator a test stops, hundreds of times a run. Here the main loop wakes when
    :meth:`stop` is called and the shutdown waits for the connections in 5 ms steps.
    The steps are uvicorn's (close the listeners, close the connections, wait for them and
    their requests, then the application's shutdown), only without the fixed sleeps."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self.should_exit:  # stop() came before the loop existed
            return
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _DRAIN_SECONDS
        while self.server_state.connections or self.server_state.tasks:
            if loop.time() >= deadline:
                for task in self.server_state.tasks:
                    task.cancel(msg="the test server stopped")
                break
            await asyncio.sleep(0.005)
        await self.lifespan.shutdown()

    def stop(self) -> None:
        """Ask the server to stop (from any thread); it wakes at once."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            # RuntimeError: the loop has closed already, so the server has stopped.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)


@contextmanager
def serve_in_thread(app: Any, *, timeout: float = 10.0) -> Iterator[str]:
    """Yield ``http://127.0.0.1:<port>`` while ``app`` is being served."""
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="auto"
    )
    server = _PromptServer(config)
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
        server.stop()
        thread.join(timeout=10)
