"""An SBC sales invoice's lines (``GET /sales_invoices/{id}``'s ``invoice_lines``), for
Level 3 card data.

A line (``SalesInvoiceLineItem`` in Sage's published v3.1 schema) has ``description``,
``quantity``, ``unit_price``, ``discount_amount``, ``net_amount`` (after the discount, before
tax), ``tax_amount`` and a ``product`` or ``service`` link. The link carries the item's id
and what SBC displays for it; its ``item_code`` is used when the link has one, else what SBC
displays, so the commodity mapping table matches what finance sees on the invoice.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from ledgerlink.connectors.sbc.shapes import _link_id, money
from ledgerlink.domain.invoice_lines import InvoiceDetail, InvoiceLine


def invoice_detail(item: dict[str, Any], base_currency: str) -> InvoiceDetail:
    currency = _link_id(item.get("currency")) or base_currency
    lines: list[InvoiceLine] = []
    for raw in item.get("invoice_lines") or []:
        if not isinstance(raw, dict):
            continue
        lines.append(
            InvoiceLine(
                position=len(lines) + 1,
                description=str(raw.get("description") or raw.get("displayed_as") or ""),
                item_code=_item_code(raw.get("product") or raw.get("service")),
                quantity=_quantity(raw.get("quantity")),
                unit_price=money(raw.get("unit_price"), currency),
                discount=money(raw.get("discount_amount"), currency),
                tax=money(raw.get("tax_amount"), currency),
                amount=money(raw.get("net_amount"), currency),
            )
        )
    return InvoiceDetail(
        invoice_id=str(item["id"]),
        number=str(item.get("invoice_number") or item.get("displayed_as") or ""),
        total=money(item.get("total_amount"), currency),
        tax=money(item.get("tax_amount"), currency),
        lines=tuple(lines),
    )


def _item_code(link: Any) -> str:
    if not isinstance(link, dict):
        return ""
    return str(link.get("item_code") or link.get("displayed_as") or "").strip()


def _quantity(value: Any) -> Decimal:
    try:
        return Decimal(str(value if value is not None else 0)).normalize()
    except InvalidOperation:
        return Decimal(0)
