"""Every upstream client checks certificates with one TLS context built once per process
(building one parses the whole certificate-authority bundle, about 25 ms of CPU, and each
connector, token request and demo call makes a client)."""

from __future__ import annotations

import asyncio
import ssl

from httpx_aiohttp import AiohttpTransport

from ledgerlink.connectors.http import UpstreamClient, tls_context


def test_the_shared_context_verifies_certificates_and_host_names() -> None:
    context = tls_context()
    assert context is tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the authorities are loaded


def test_each_connector_client_uses_the_shared_context() -> None:
    async def transports() -> list[object]:
        made = [UpstreamClient("test", "https://upstream.example", classify=lambda _: None)]
        made.append(UpstreamClient("test", "https://upstream.example", classify=lambda _: None))
        found = [client._client._transport for client in made]
        for client in made:
            await client.aclose()
        return found

    for transport in asyncio.run(transports()):
        assert isinstance(transport, AiohttpTransport)
        assert transport.ssl_context is tls_context()
