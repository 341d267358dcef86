"""Push: a PayTrace Secure Checkout style silent post per transaction.

Form-encoded (``parmList=TRANSACTIONID~123|TRANXTYPE~SALE|…|``) and unsigned, as PayTrace's
silent post is, so receivers must verify each
event by reading the transaction back (``/v1/transactions/export/by_id``). Sent in the
background with a few retries; a failing receiver never slows or fails the API call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.5, 2.0)


class SilentPost:
    def __init__(self, url: str | None) -> None:
        self.url = url
        self.delivered = 0
        self.failed = 0
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, fields: dict[str, str]) -> None:
        """Post ``fields`` as PayTrace does: one form field ``parmList`` of
        ``KEY~value|`` pairs (``|`` and ``~`` cannot occur in the values sent)."""
        if not self.url:
            return
        parm_list = "".join(
            f"{key}~{str(value).replace('|', ' ').replace('~', ' ')}|"
            for key, value in fields.items()
        )
        fields = {"parmList": parm_list}
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._deliver(self.url, fields))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, fields: dict[str, str]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0)
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS)):
            if delay:
                await asyncio.sleep(delay)
            try:
                response = await self._client.post(url, data=fields)
            except httpx.HTTPError as exc:
                log.info(
                    "paytrace.silent_post.error attempt=%s error=%s", attempt, type(exc).__name__
                )
                continue
            if response.status_code < 500:
                self.delivered += 1
                return
        self.failed += 1

    async def drain(self, timeout: float = 5.0) -> None:
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*self._tasks, return_exceptions=True), timeout
                )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
