"""PayTrace's Level 3 endpoints: ``/v1/level_three/visa`` and ``/v1/level_three/mastercard``.

Level 3 data (invoice, tax, shipping and line items) is added to an approved, unsettled
sale or authorization *after* it was charged, so purchasing cards qualify for lower
rates. The answer is 170, "Visa/MasterCard enhanced data was successfully added to
Transaction ID 392483066. 1 line item records were created." (recorded).

What the sandbox checks, and why no more: a transaction id (58 / 811), the card brand of
the endpoint and a state that can still take data (error 881), and each line item's
shape: numbers where numbers go, texts within PayTrace's field lengths, ``debit_or_credit``
``D`` or ``C`` (error 880, one message per field naming ``line_items[i].field``). It does
**not** check that line amounts add up to the sale: PayTrace's live sandbox accepted a
line of quantity 4 times unit cost 424 with amount 1999 in a public client's remote test, so a
sandbox that refused it would hide how the gateway behaves.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.responses import JSONResponse, Response

from ledgerlink.sandbox.paytrace import codes
from ledgerlink.sandbox.paytrace.gateway import Body, Caller, Gateway, Handler, PayTraceError

BRANDS = {"visa": "Visa", "mastercard": "MasterCard"}
MAX_LINE_ITEMS = 998
#: Text fields of a line item and their longest value (PayTrace's published lengths for
#: the fields public clients send).
TEXT_LIMITS = {
    "description": 35,
    "product_id": 12,
    "commodity_code": 12,
    "unit_of_measure": 12,
    "merchant_tax_id": 15,
}
NUMBER_FIELDS = (
    "quantity",
    "unit_cost",
    "amount",
    "discount_amount",
    "discount_rate",
    "additional_tax_amount",
    "additional_tax_rate",
)
FLAG_FIELDS = ("tax_included", "discount_included", "additional_tax_included")
#: Order-level numbers.
ORDER_NUMBERS = (
    "tax_amount",
    "national_tax_amount",
    "discount_amount",
    "freight_amount",
    "duty_amount",
    "additional_tax_amount",
    "additional_tax_rate",
)


class LevelThree:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store = gateway.store
        self.clock = gateway.clock

    def table(self) -> dict[str, Handler]:
        return {
            "/v1/level_three/visa": self._for("visa"),
            "/v1/level_three/mastercard": self._for("mastercard"),
        }

    def _for(self, brand: str) -> Handler:
        async def handler(caller: Caller, body: Body) -> Response:
            return self.add(brand, body)

        return handler

    def add(self, brand: str, body: Body) -> Response:
        row = self.gateway._find_transaction(body)
        card_brand = BRANDS[brand]
        if (
            row["type"] not in ("SALE", "AUTHORIZATION")
            or row["status"] not in (codes.STATUS_AUTHORIZED, codes.STATUS_PENDING)
            or row["card_type"].casefold() != card_brand.casefold()
        ):
            raise PayTraceError.of(codes.E_LEVEL_THREE_CARD)
        problems = _problems(body)
        if problems:
            raise PayTraceError({codes.E_LEVEL_THREE: problems})
        items = body.get("line_items") or []
        kept = {k: v for k, v in body.items() if k not in ("integrator_id", "transaction_id")}
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO level_three (transaction_id, brand, data, line_items,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (
                    row["id"],
                    card_brand,
                    json.dumps(kept, default=str),
                    len(items),
                    self.clock.now(),
                ),
            )
        return JSONResponse(
            {
                "success": True,
                "response_code": codes.LEVEL_THREE_ADDED,
                "status_message": "Visa/MasterCard enhanced data was successfully added to "
                f"Transaction ID {row['id']}. {len(items)} line item records were created.",
            }
        )


def _problems(body: Body) -> list[str]:
    """Every field that is not of PayTrace's shape, named as sent."""
    found = [
        f"Please provide a valid {name}."
        for name in ORDER_NUMBERS
        if name in body and not _number(body[name])
    ]
    items = body.get("line_items")
    if items is None:
        return found
    if not isinstance(items, list) or len(items) > MAX_LINE_ITEMS:
        return [*found, f"Please provide line_items as a list of at most {MAX_LINE_ITEMS}."]
    for index, item in enumerate(items):
        where = f"line_items[{index}]"
        if not isinstance(item, dict):
            found.append(f"Please provide {where} as an object.")
            continue
        for name in NUMBER_FIELDS:
            if name in item and not _number(item[name]):
                found.append(f"Please provide a valid {where}.{name}.")
        if "quantity" in item and _number(item["quantity"]) and Decimal(str(item["quantity"])) == 0:
            found.append(f"Please provide a valid {where}.quantity.")
        for name, limit in TEXT_LIMITS.items():
            value = item.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                found.append(f"Please provide a valid {where}.{name} (at most {limit} characters).")
        if item.get("debit_or_credit") not in (None, "D", "C"):
            found.append(f"Please provide a valid {where}.debit_or_credit (D or C).")
        for name in FLAG_FIELDS:
            if name in item and not isinstance(item[name], bool):
                found.append(f"Please provide a valid {where}.{name} (true or false).")
    return found


def _number(value: Any) -> bool:
    """A non-negative number, sent as a JSON number or a numeric string."""
    if isinstance(value, bool):
        return False
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return False
    return number.is_finite() and number >= 0
