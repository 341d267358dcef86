"""Reading an invoice's lines from Sage 500 (for Level 3 card data).

``tarInvoiceDetl`` holds each line's item, description, unit price, extended amount
(quantity x unit price) and trade discount; ``tarInvoiceLineDist`` the quantity shipped and
the line's sales-tax transaction (``tciSTaxTran``); ``timItem`` and ``tciUnitMeasure`` name
the item and the unit. Comment-only lines are skipped. A line's amount is its extended
amount less its trade discount; the invoice's tax is the tax of its lines.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import Engine, func, select

from ledgerlink.connectors.errors import NotFound
from ledgerlink.connectors.sage500.reads import to_money
from ledgerlink.connectors.sage500.tables import (
    tarInvoice,
    tarInvoiceDetl,
    tarInvoiceLineDist,
    tciSTaxTran,
    tciUnitMeasure,
    timItem,
)
from ledgerlink.domain.invoice_lines import InvoiceDetail, InvoiceLine
from ledgerlink.domain.money import Money

SYSTEM = "sage500"


def invoice_lines(
    engine: Engine, company_id: str, invoice_key: str, digits: dict[str, int]
) -> InvoiceDetail:
    if not invoice_key.strip().isdigit():
        raise NotFound(SYSTEM, f"Sage 500 invoice keys are numbers, not {invoice_key!r}")
    key = int(invoice_key)
    quantity = (
        select(
            tarInvoiceLineDist.c.InvoiceLineKey,
            func.sum(tarInvoiceLineDist.c.QtyShipped).label("qty"),
            func.sum(func.coalesce(tciSTaxTran.c.STaxAmt, 0)).label("tax"),
        )
        .select_from(tarInvoiceLineDist)
        .outerjoin(tciSTaxTran, tciSTaxTran.c.STaxTranKey == tarInvoiceLineDist.c.STaxTranKey)
        .group_by(tarInvoiceLineDist.c.InvoiceLineKey)
        .subquery()
    )
    lines_query = (
        select(
            tarInvoiceDetl,
            timItem.c.ItemID,
            tciUnitMeasure.c.UnitMeasID,
            quantity.c.qty,
            quantity.c.tax,
        )
        .select_from(tarInvoiceDetl)
        .outerjoin(timItem, timItem.c.ItemKey == tarInvoiceDetl.c.ItemKey)
        .outerjoin(tciUnitMeasure, tciUnitMeasure.c.UnitMeasKey == tarInvoiceDetl.c.UnitMeasKey)
        .outerjoin(quantity, quantity.c.InvoiceLineKey == tarInvoiceDetl.c.InvoiceLineKey)
        .where(tarInvoiceDetl.c.InvcKey == key)
        .order_by(tarInvoiceDetl.c.SeqNo, tarInvoiceDetl.c.InvoiceLineKey)
    )
    with engine.connect() as connection:
        invoice = connection.execute(
            select(tarInvoice.c.TranID, tarInvoice.c.TranAmt, tarInvoice.c.CurrID).where(
                tarInvoice.c.InvcKey == key, tarInvoice.c.CompanyID == company_id
            )
        ).first()
        if invoice is None:
            raise NotFound(SYSTEM, f"Sage 500 has no invoice with key {key} in {company_id}")
        rows = connection.execute(lines_query).all()
    currency = str(invoice.CurrID).strip()
    places = digits.get(currency, 2)
    lines: list[InvoiceLine] = []
    for row in rows:
        if row.CmntOnly:
            continue
        discount = to_money(row.TradeDiscAmt, currency, places)
        lines.append(
            InvoiceLine(
                position=len(lines) + 1,
                description=str(row.Description or "").strip(),
                item_code=str(row.ItemID or "").strip(),
                quantity=Decimal(str(row.qty or 0)).normalize(),
                unit_price=_price(row.UnitPrice, currency, places),
                discount=discount,
                tax=to_money(row.tax, currency, places),
                amount=to_money(row.ExtAmt, currency, places) - discount,
                unit_of_measure=str(row.UnitMeasID or "").strip(),
            )
        )
    return InvoiceDetail(
        invoice_id=str(key),
        number=str(invoice.TranID or "").strip(),
        total=to_money(invoice.TranAmt, currency, places),
        tax=sum((line.tax for line in lines), Money.zero(currency)),
        lines=tuple(lines),
    )


def _price(value: Decimal | None, currency: str, places: int) -> Money:
    """A unit price (Sage keeps five places) to the currency's minor unit, half up."""
    exact = Decimal(str(value or 0)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    return Money.parse(exact, currency)
