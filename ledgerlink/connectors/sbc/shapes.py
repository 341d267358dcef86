"""SBC JSON ↔ ledgerlink domain types. Amounts are read as Decimal, never float."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ledgerlink.connectors.sbc import references
from ledgerlink.domain.accounts import (
    Address,
    CustomerAccount,
    CustomerDraft,
    Invoice,
    InvoiceStatus,
    PostedReceipt,
)
from ledgerlink.domain.money import Money

SYSTEM = "sbc"
_IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c1c55-2a35-4c55-9d0e-6c656467656c")
_STATUS = {
    "DRAFT": InvoiceStatus.DRAFT,
    "UNPAID": InvoiceStatus.UNPAID,
    "PART_PAID": InvoiceStatus.PART_PAID,
    "PAID": InvoiceStatus.PAID,
    "VOID": InvoiceStatus.VOID,
    "PRO_FORMA": InvoiceStatus.DRAFT,
}


@dataclass(frozen=True)
class InvoiceLine:
    """One line of a sales invoice to create; the ledger account and tax rate are SBC ids."""

    description: str
    ledger_account_id: str
    unit_price: Money
    quantity: Decimal = Decimal(1)
    tax_rate_id: str | None = None

    def body(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "ledger_account_id": self.ledger_account_id,
            "quantity": str(self.quantity),
            "unit_price": amount_text(self.unit_price),
            "tax_rate_id": self.tax_rate_id,
        }


def idempotency_id(key: str) -> str:
    """SBC wants a 32-hex GUID; ours are readable keys, so derive one deterministically."""
    return uuid.uuid5(_IDEMPOTENCY_NAMESPACE, key).hex


def money(value: Any, currency: str) -> Money:
    """An SBC amount (JSON number read as Decimal, or string) as exact Money."""
    if value is None or value == "":
        return Money.zero(currency)
    return Money.parse(Decimal(str(value)).quantize(Decimal("0.01")), currency)


def amount_text(value: Money) -> str:
    return value.format_plain()


def _link_id(value: Any) -> str:
    return str(value.get("id")) if isinstance(value, dict) and value.get("id") else ""


def _datetime(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _date(value: Any) -> date | None:
    return date.fromisoformat(str(value)[:10]) if value else None


def customer(item: dict[str, Any], base_currency: str, *, deleted: bool = False) -> CustomerAccount:
    address = item.get("main_address") or {}
    person = item.get("main_contact_person") or {}
    currency = _link_id(item.get("currency")) or base_currency
    return CustomerAccount(
        system=SYSTEM,
        id=str(item["id"]),
        number=contact_member_number(item),
        name=str(item.get("name") or item.get("displayed_as") or ""),
        email=str(item.get("email") or person.get("email") or ""),
        phone=str(person.get("telephone") or person.get("mobile") or ""),
        address=Address(
            line1=str(address.get("address_line_1") or ""),
            line2=str(address.get("address_line_2") or ""),
            city=str(address.get("city") or ""),
            region=str(address.get("region") or ""),
            postal_code=str(address.get("postal_code") or ""),
            country=_link_id(address.get("country")) or str(address.get("country_id") or ""),
        ),
        currency=currency,
        balance=money(item.get("balance"), currency) if "balance" in item else None,
        updated_at=_datetime(item.get("updated_at")),
        deleted=deleted,
    )


def contact_member_number(item: dict[str, Any]) -> str:
    """The member number a contact holds (see :mod:`references`)."""
    return references.member_number(str(item.get("reference") or ""), item.get("notes"))


def as_member_sees_it(item: dict[str, Any]) -> dict[str, Any]:
    """A contact with its member number as ``reference``, the way the mapping specs read
    a customer record (a long member number lives in the notes, see :mod:`references`)."""
    return {**item, "reference": contact_member_number(item)}


def contact_body(
    draft: CustomerDraft,
    key: str | None,
    *,
    reference: str | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    """The contact to write. ``reference`` is the short reference of a member number too
    long for SBC, whose ``notes`` then carry the number (:mod:`references`); ``notes`` is
    left out when ``None`` so Sage keeps what a user wrote there."""
    body: dict[str, Any] = {
        "name": draft.name,
        "contact_type_ids": ["CUSTOMER"],
        "reference": reference or draft.number,
        "email": draft.email or None,
        "currency_id": draft.currency,
        "main_address": {
            "address_line_1": draft.address.line1,
            "address_line_2": draft.address.line2,
            "city": draft.address.city,
            "region": draft.address.region,
            "postal_code": draft.address.postal_code,
            "country_id": draft.address.country or None,
        },
        "main_contact_person": {
            "name": draft.name,
            "email": draft.email or None,
            "telephone": draft.phone or None,
        },
    }
    if notes is not None:
        body["notes"] = notes
    if key is not None:
        body["idempotency_id"] = idempotency_id(key)
    return body


def invoice(item: dict[str, Any], base_currency: str) -> Invoice:
    currency = _link_id(item.get("currency")) or base_currency
    issued = _date(item.get("date"))
    return Invoice(
        system=SYSTEM,
        id=str(item["id"]),
        number=str(item.get("invoice_number") or item.get("displayed_as") or ""),
        customer_id=_link_id(item.get("contact")),
        date=issued or date.min,
        due_date=_date(item.get("due_date")),
        total=money(item.get("total_amount"), currency),
        outstanding=money(item.get("outstanding_amount"), currency),
        status=_STATUS.get(_link_id(item.get("status")), InvoiceStatus.UNPAID),
        updated_at=_datetime(item.get("updated_at")),
    )


def posted_payment(item: dict[str, Any], key: str, currency: str, replayed: bool) -> PostedReceipt:
    amount = money(item.get("total_amount"), currency)
    applied = Money.zero(currency)
    for allocation in item.get("allocated_artefacts") or []:
        applied = applied + money(allocation.get("amount"), currency)
    return PostedReceipt(
        system=SYSTEM,
        id=str(item["id"]),
        idempotency_key=key,
        amount=amount,
        applied=applied,
        replayed=replayed,
    )
