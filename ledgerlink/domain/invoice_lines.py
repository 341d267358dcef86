"""An invoice's lines as the ledger recorded them: what Level 3 card data is built from.

Both ledgers keep lines (SBC ``invoice_lines``; Sage 500 ``tarInvoiceDetl`` with the
quantity on ``tarInvoiceLineDist``). ledgerlink reads them only to describe a card
payment to the gateway, never to change them, so the amounts are kept exactly as the
ledger has them, even when they do not add up: deciding whether they do is
:mod:`ledgerlink.domain.level_three`'s job, so the user is told which line is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ledgerlink.domain.money import Money


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One line: ``amount`` is its net (quantity x unit price - discount, before tax)."""

    position: int  # 1, 2, ... as the ledger orders the lines (what the user sees)
    description: str
    item_code: str  # Sage 500 ItemID, SBC product/service item code ("" when none)
    quantity: Decimal  # not money: may be fractional (hours, kilograms)
    unit_price: Money
    discount: Money
    tax: Money
    amount: Money
    unit_of_measure: str = ""  # the ledger's own unit (Sage 500 UnitMeasID), if any


@dataclass(frozen=True, slots=True)
class InvoiceDetail:
    """An invoice with its lines; ``tax`` is the invoice's tax, ``total`` what it asks."""

    invoice_id: str
    number: str
    total: Money
    tax: Money
    lines: tuple[InvoiceLine, ...]
