"""PayTrace Protect (hosted card fields): client keys, and charging or storing a card by the
one-time token the payer's browser got from PayTrace.

ledgerlink never sees the card: the payer types it into fields PayTrace serves (an iframe
from PayTrace's origin), PayTrace hands the page an ``hpf_token`` + ``enc_key``, and the
calls here use them once. Kept apart from :mod:`gateway` (the ``CardGateway`` port), whose
calls it reuses (authentication, retries, error classification).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ledgerlink.connectors.errors import Misconfigured, Rejected
from ledgerlink.connectors.paytrace.gateway import SYSTEM, PayTraceGateway
from ledgerlink.domain.accounts import CardTransaction, CardTransactionKind
from ledgerlink.domain.money import Money

#: PayTrace's code for a hosted-fields token (or client key) that is bad, used or expired.
TOKEN_REFUSED = "1032"  # noqa: S105 (an error code, not a secret)


@dataclass(frozen=True)
class HostedCard:
    """What the payer's browser got from PayTrace's hosted fields (never the card)."""

    hpf_token: str
    enc_key: str


@dataclass(frozen=True)
class Billing:
    name: str = ""
    street_address: str = ""
    zip: str = ""
    email: str = ""
    phone: str = ""

    def address(self) -> dict[str, str]:
        found = {"name": self.name, "street_address": self.street_address, "zip": self.zip}
        return {key: value for key, value in found.items() if value}


def origin_of(api_base_url: str) -> str:
    """The origin PayTrace serves its Protect script and fields from (the API's host on
    the sandbox; ``https://protect.paytrace.com`` style hosts are derived the same way from
    the configured API address)."""
    parts = urlsplit(str(api_base_url))
    return f"{parts.scheme}://{parts.netloc}"


def script_url(api_base_url: str) -> str:
    return origin_of(api_base_url) + "/js/protect.min.js"


def token_refused(error: Exception) -> bool:
    return isinstance(error, Rejected) and error.upstream_code == TOKEN_REFUSED


class PayTraceProtect:
    """Protect calls over an open :class:`PayTraceGateway` (its token and client)."""

    def __init__(self, gateway: PayTraceGateway) -> None:
        self.gateway = gateway

    @property
    def origin(self) -> str:
        return origin_of(self.gateway.options.api_base_url)

    @property
    def script_url(self) -> str:
        return script_url(self.gateway.options.api_base_url)

    async def client_key(self) -> str:
        """A short-lived key the payer's page hands ``PTPayment.setup`` (an empty body, as
        PayTrace's samples send it: no ``integrator_id``)."""
        response = await self.gateway.client.request(
            "POST", "/v1/payment_fields/token/create", json={}, idempotent=True
        )
        body = json.loads(response.content or b"{}")
        key = body.get("clientKey") if isinstance(body, dict) else None
        if not key:
            raise Misconfigured(SYSTEM, "PayTrace gave no client key for its hosted card fields")
        return str(key)

    async def sale(
        self, card: HostedCard, amount: Money, *, invoice_number: str, billing: Billing
    ) -> CardTransaction:
        # Never retried once it may have been sent (a sale is not idempotent upstream, and
        # the token works once anyway).
        body = await self.gateway._post(
            "/v1/transactions/sale/pt_protect",
            {
                "hpf_token": card.hpf_token,
                "enc_key": card.enc_key,
                "amount": amount.format_plain(),
                "invoice_id": invoice_number,
                **_billing(billing),
            },
            idempotent=False,
        )
        return self.gateway._result(body, CardTransactionKind.SALE, amount)

    async def create_profile(self, customer_id: str, card: HostedCard, billing: Billing) -> None:
        """A new PayTrace customer profile holding the card (``171`` if the id exists)."""
        await self.gateway._post(
            "/v1/customer/pt_protect_create",
            {
                "customer_id": customer_id,
                "hpf_token": card.hpf_token,
                "enc_key": card.enc_key,
                **_billing(billing),
            },
            idempotent=False,
        )

    async def update_profile(self, customer_id: str, card: HostedCard, billing: Billing) -> None:
        """The card of an existing profile replaced (``30`` if there is none)."""
        await self.gateway._post(
            "/v1/customer/pt_protect_update",
            {
                "customer_id": customer_id,
                "hpf_token": card.hpf_token,
                "enc_key": card.enc_key,
                **_billing(billing),
            },
            idempotent=False,
        )


def _billing(billing: Billing) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if billing.address():
        fields["billing_address"] = billing.address()
    if billing.email:
        fields["email"] = billing.email
    if billing.phone:
        fields["phone"] = billing.phone
    return fields
