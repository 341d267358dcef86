"""Level 3 test helpers: invoices with lines in each ledger sandbox (written as the ledger
itself would: Sage 500's tables, SBC's API), the PayTrace profile of a card brand, a
stored-card charge through ledgerlink's API, and what the PayTrace sandbox recorded."""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from ledgerlink import connections
from ledgerlink.connectors.sage500.tables import (
    tarInvoice,
    tarInvoiceDetl,
    tarInvoiceLineDist,
    tciSTaxTran,
    tciUnitMeasure,
    timItem,
)
from ledgerlink.connectors.sbc.shapes import InvoiceLine
from ledgerlink.domain.money import Money
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.store.models import Connection
from tests.support.payments import PaymentsWorld, profiles
from tests.support.web import make_user


@dataclass(frozen=True)
class Line:
    item: str
    description: str
    quantity: str
    unit_price: str
    discount: str = "0.00"
    tax: str = "0.00"
    #: what the ledger recorded as quantity x unit price (None: the right product)
    extended: str | None = None


#: Two lines that add up: 4 x 4.24 = 16.96 (tax 1.36); 2 x 37.50 - 5.00 = 70.00 (tax 5.60).
GOOD_LINES = (
    Line("WIDGET-01", "Steel widgets", "4", "4.24", tax="1.36"),
    Line("SVC-INSTALL", "Installation", "2", "37.50", discount="5.00", tax="5.60"),
)
GOOD_TOTAL = "93.92"


def card_types(world: PaymentsWorld) -> dict[str, str]:
    """PayTrace customer id → the card brand its profile holds."""
    body = world.paytrace("/v1/customer/export", {})
    return {
        str(c["customer_id"]): str((c.get("credit_card") or {}).get("card_type") or "")
        for c in body.get("customers", [])
    }


#: PayTrace's sandbox test cards, by brand (typed into PayTrace by the merchant, never
#: through ledgerlink).
TEST_CARDS = {"Visa": "4012000098765439", "MasterCard": "5499740000000057"}


def profile_of_brand(world: PaymentsWorld, brand: str) -> str:
    """A PayTrace profile holding a ``brand`` card: a seeded one, else a seeded Discover
    profile whose card the merchant replaced in PayTrace with the brand's test card."""
    types = card_types(world)
    found = [c for c, kind in sorted(types.items()) if kind == brand]
    if found:
        return found[0]
    other = next(c for c, kind in sorted(types.items()) if kind == "Discover")
    answer = world.paytrace(
        "/v1/customer/update",
        {
            "customer_id": other,
            "credit_card": {
                "number": TEST_CARDS[brand],
                "expiration_month": "12",
                "expiration_year": str(date.today().year + 2),
            },
        },
    )
    assert answer.get("success"), answer
    return other


# -- Sage 500 -------------------------------------------------------------------------------


def sage500_invoice_with_lines(world: PaymentsWorld, customer: str, lines: tuple[Line, ...]) -> str:
    """An unpaid invoice of ``customer`` (PayTrace id C000nn → CustKey nn) given ``lines``
    and a total of their amounts plus tax, as the ERP records an invoice; its TranID."""
    assert world.erp is not None
    invoice = next(
        i for i in world.open_invoices(int(customer[1:])) if i["Balance"] == i["TranAmt"]
    )
    total = Decimal(0)
    with world.erp.begin() as conn:
        # the invoice is re-entered with these lines instead of the ones it was seeded with
        old = select(tarInvoiceDetl.c.InvoiceLineKey).where(
            tarInvoiceDetl.c.InvcKey == invoice["InvcKey"]
        )
        conn.execute(delete(tarInvoiceLineDist).where(tarInvoiceLineDist.c.InvoiceLineKey.in_(old)))
        conn.execute(delete(tarInvoiceDetl).where(tarInvoiceDetl.c.InvcKey == invoice["InvcKey"]))
        base = int(conn.scalar(select(func.coalesce(func.max(tarInvoiceDetl.c.InvoiceLineKey), 0))))
        unit_key = int(
            conn.scalar(select(func.coalesce(func.max(tciUnitMeasure.c.UnitMeasKey), 0)))
        )
        conn.execute(
            insert(tciUnitMeasure).values(
                UnitMeasKey=unit_key + 1, UnitMeasID="EA", CompanyID="SOA"
            )
        )
        for n, line in enumerate(lines, start=1):
            key = base + n
            extended = Decimal(line.extended or Decimal(line.quantity) * Decimal(line.unit_price))
            amount = extended - Decimal(line.discount)
            total += amount + Decimal(line.tax)
            conn.execute(insert(timItem).values(ItemKey=key, ItemID=line.item, CompanyID="SOA"))
            conn.execute(insert(tciSTaxTran).values(STaxTranKey=key, STaxAmt=Decimal(line.tax)))
            conn.execute(
                insert(tarInvoiceDetl).values(
                    InvoiceLineKey=key,
                    InvcKey=invoice["InvcKey"],
                    SeqNo=n,
                    ItemKey=key,
                    Description=line.description,
                    UnitMeasKey=unit_key + 1,
                    UnitPrice=Decimal(line.unit_price),
                    ExtAmt=extended,
                    TradeDiscAmt=Decimal(line.discount),
                    CmntOnly=0,
                )
            )
            conn.execute(
                insert(tarInvoiceLineDist).values(
                    InvoiceLineDistKey=key,
                    InvoiceLineKey=key,
                    QtyShipped=Decimal(line.quantity),
                    STaxTranKey=key,
                )
            )
        conn.execute(
            update(tarInvoice)
            .where(tarInvoice.c.InvcKey == invoice["InvcKey"])
            .values(TranAmt=total, TranAmtHC=total, Balance=total, BalanceHC=total)
        )
    return str(invoice["TranID"]).strip()


# -- SBC ------------------------------------------------------------------------------------


def sbc_invoice_with_lines(world: PaymentsWorld, customer: str, lines: tuple[Line, ...]) -> str:
    """A new SBC sales invoice for ``customer``'s linked contact with ``lines`` (each with
    the sandbox's tax rate that gives its tax, or none); its invoice number."""
    contact = world.linked_customer("M" + customer[1:])

    async def create() -> str:
        async with world.ledger() as ledger:
            existing = [i async for i in ledger.invoices(customer_id=contact, open_only=False)]
            sample = await ledger._get(f"/sales_invoices/{existing[0].id}")
            account = sample["invoice_lines"][0]["ledger_account"]["id"]
            invoice = await ledger.create_invoice(
                contact,
                date.today(),
                [
                    InvoiceLine(
                        line.description,
                        account,
                        Money.parse(line.unit_price, "USD"),
                        Decimal(line.quantity),
                    )
                    for line in lines
                ],
                f"l3-{secrets.token_hex(4)}",
            )
            return invoice.number

    return asyncio.run(create())


# -- ledgerlink and the PayTrace sandbox -------------------------------------------------------


def set_paytrace_settings(world: PaymentsWorld, settings: dict[str, Any]) -> None:
    """Change the world's PayTrace connection's settings, as an administrator saving them."""
    with world.runtime.db.transaction() as session:
        connection = session.get(Connection, world.paytrace_id)
        assert connection is not None
        connections.update(
            session, world.runtime.vault, cli_principal(), connection, settings=settings
        )


def charge(world: PaymentsWorld, client: Any, invoice_number: str, amount: str = "") -> Any:
    """A stored-card charge through ledgerlink's API, as an operator; the JSON answer."""
    token = make_user(world.runtime.db, Role.OPERATOR).token
    answer = client.post(
        "/api/v1/payments/charges",
        json={"invoice_number": invoice_number, "amount": amount},
        headers={
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": f"l3-charge-{secrets.token_hex(6)}",
        },
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def recorded(tmp_path: Path, transaction_id: str) -> dict[str, Any] | None:
    """The Level 3 data the PayTrace sandbox keeps for a transaction (its state file)."""
    with sqlite3.connect(tmp_path / "pt" / "paytrace.sqlite3") as db:
        row = db.execute(
            "SELECT brand, data, line_items FROM level_three WHERE transaction_id = ?",
            (int(transaction_id),),
        ).fetchone()
    if row is None:
        return None
    return {"brand": row[0], "line_count": row[2], **json.loads(row[1])}


__all__ = ["GOOD_LINES", "GOOD_TOTAL", "Line", "profiles"]
