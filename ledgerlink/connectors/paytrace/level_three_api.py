"""PayTrace's Level 3 calls: ``/v1/level_three/visa`` and ``/v1/level_three/mastercard``.

Level 3 data is added to an approved, unsettled sale *after* it was charged (success
``170``). The two brands take different shapes (PayTrace's JSON API v1): Visa has a
commodity code per line (and customer/merchant tax ids); MasterCard has none per line but
a ``debit_or_credit`` flag and says whether the discount is included in the line amount.
Amounts go as decimal strings of the merchant's currency, like every PayTrace amount.
"""

from __future__ import annotations

from typing import Any, Protocol

from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.domain.level_three import MASTERCARD, VISA, LevelThreeData, LevelThreeLine

SYSTEM = "paytrace"
ADDED = 170
PATHS = {VISA: "/v1/level_three/visa", MASTERCARD: "/v1/level_three/mastercard"}


class _Poster(Protocol):
    async def _post(
        self, path: str, body: dict[str, Any], *, idempotent: bool
    ) -> dict[str, Any]: ...


class PayTraceLevelThree:
    """The Level 3 call, for :class:`~ledgerlink.connectors.paytrace.gateway.PayTraceGateway`
    (which supplies ``_post``)."""

    async def add_level_three(self: _Poster, transaction_id: str, data: LevelThreeData) -> None:
        """Send ``data`` for ``transaction_id``. Sending again replaces it at PayTrace, so
        the call may be retried."""
        body = await self._post(
            PATHS[data.brand], level_three_body(transaction_id, data), idempotent=True
        )
        if int(body.get("response_code") or 0) != ADDED:
            raise UpstreamError(
                SYSTEM,
                "PayTrace did not add the Level 3 data: "
                f"{body.get('status_message') or 'no reason given'}",
                upstream_code=str(body.get("response_code") or "") or None,
            )


def level_three_body(transaction_id: str, data: LevelThreeData) -> dict[str, Any]:
    """PayTrace's request body for ``data``'s brand."""
    body: dict[str, Any] = {
        "transaction_id": int(transaction_id),
        "invoice_id": data.invoice_number[:50],
        "tax_amount": data.tax.format_plain(),
        "line_items": [_line(line, data.brand) for line in data.lines],
    }
    if data.customer_reference:
        body["customer_reference_id"] = data.customer_reference[:17]
    if data.ship_from_zip:
        body["source_address"] = {"zip": data.ship_from_zip}
    if data.ship_to_zip:
        body["shipping_address"] = {"zip": data.ship_to_zip}
    return body


def _line(line: LevelThreeLine, brand: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "description": line.description,
        "quantity": format(line.quantity.normalize(), "f"),
        "unit_of_measure": line.unit_of_measure,
        "unit_cost": line.unit_cost.format_plain(),
        "amount": line.amount.format_plain(),
        "discount_amount": line.discount.format_plain(),
    }
    if line.product_id:
        item["product_id"] = line.product_id
    if brand == VISA:
        if line.commodity_code:
            item["commodity_code"] = line.commodity_code
    else:
        item["debit_or_credit"] = "D"
        item["discount_included"] = True
    return item
