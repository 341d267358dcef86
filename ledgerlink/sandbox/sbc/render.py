"""Records as SBC shows them: linked records as ``{id, displayed_as, $path}``, amounts as
two-decimal strings, timestamps in UTC. Only properties of the published v3.1 schema."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ledgerlink.sandbox.sbc.books import (
    ALLOCATION_TYPES,
    CONTACT_TYPES,
    INVOICE_STATUSES,
    PAYMENT_TYPES,
    Books,
)
from ledgerlink.sandbox.sbc.store import Record
from ledgerlink.sandbox.sbc.values import amount_number

Json = dict[str, Any]

TRANSACTION_TYPES = {
    **PAYMENT_TYPES,
    "SALES_INVOICE": "Sales Invoice",
    "SALES_CREDIT_NOTE": "Sales Credit Note",
}


def link(collection: str, record_id: str | None, displayed_as: str) -> Json | None:
    if not record_id:
        return None
    return {"id": record_id, "displayed_as": displayed_as, "$path": f"/{collection}/{record_id}"}


def _stamp(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Renderer:
    """Turns one business's records into API JSON."""

    def __init__(self, books: Books, business: str) -> None:
        self.books = books
        self.business = business
        self.store = books.store

    def _shared(self, collection: str, record_id: str | None) -> Json | None:
        """Links to account-wide reference data (currencies, countries, payment methods)."""
        if not record_id:
            return None
        record = self.store.get("-", collection, record_id)
        return link(collection, record_id, record["displayed_as"] if record else record_id)

    def _local(self, collection: str, record_id: str | None) -> Json | None:
        if not record_id:
            return None
        record = self.store.get(self.business, collection, record_id)
        return link(
            collection, record_id, self.displayed_as(collection, record) if record else record_id
        )

    def displayed_as(self, collection: str, record: Record) -> str:
        match collection:
            case "contacts":
                return f"{record['name']} ({record['reference']})"
            case "sales_invoices":
                return str(record["invoice_number"])
            case "sales_credit_notes":
                return str(record["credit_note_number"])
            case "contact_payments":
                return f"{record.get('reference') or PAYMENT_TYPES[record['transaction_type_id']]}"
            case "contact_allocations":
                return ALLOCATION_TYPES[record["transaction_type_id"]]
            case "transactions":
                return str(
                    record.get("reference")
                    or TRANSACTION_TYPES.get(record["transaction_type_id"], "")
                )
            case _:
                return str(record.get("displayed_as") or record.get("name") or record["id"])

    def item(self, collection: str, record: Record, attributes: set[str] | None) -> Json:
        """A list item: id, displayed_as and $path, plus the ``attributes`` asked for."""
        brief: Json = {
            "id": record["id"],
            "displayed_as": self.displayed_as(collection, record),
            "$path": f"/{collection}/{record['id']}",
        }
        if attributes is None:
            return brief
        full = self.full(collection, record)
        if "all" in attributes:
            return full
        return {**brief, **{k: v for k, v in full.items() if k in attributes}}

    def full(self, collection: str, record: Record) -> Json:
        render = getattr(self, f"_{collection}", None)
        body: Json = render(record) if render else _plain(record)
        return {
            "id": record["id"],
            "displayed_as": self.displayed_as(collection, record),
            "$path": f"/{collection}/{record['id']}",
            **body,
        }

    # -- per collection -------------------------------------------------------------------

    def _contacts(self, c: Record) -> Json:
        address = c.get("main_address") or {}
        person = c.get("main_contact_person") or {}
        return {
            "created_at": _stamp(c.get("_created")),
            "updated_at": _stamp(c.get("_updated")),
            "contact_types": [
                link("contact_types", t, CONTACT_TYPES[t]) for t in c["contact_type_ids"]
            ],
            "name": c["name"],
            "reference": c["reference"],
            "email": c.get("email") or None,
            "notes": c.get("notes") or None,
            "currency": self._shared("currencies", c.get("currency_id")),
            "credit_limit": amount_number(c.get("credit_limit") or 0),
            "balance": amount_number(c.get("balance", 0)),
            "main_address": {
                "address_line_1": address.get("address_line_1") or None,
                "address_line_2": address.get("address_line_2") or None,
                "city": address.get("city") or None,
                "region": address.get("region") or None,
                "postal_code": address.get("postal_code") or None,
                "country": self._shared("countries", address.get("country_id")),
            },
            "main_contact_person": {
                "name": person.get("name") or None,
                "email": person.get("email") or None,
                "telephone": person.get("telephone") or None,
                "mobile": person.get("mobile") or None,
            },
            "deleted_at": _stamp(c.get("_deleted")),
        }

    def _lines(self, lines: list[Record]) -> list[Json]:
        return [
            {
                "id": line["id"],
                "displayed_as": line["description"],
                "description": line["description"],
                "ledger_account": self._local("ledger_accounts", line["ledger_account_id"]),
                "quantity": float(Decimal(line["quantity"])),
                "unit_price": amount_number(line["unit_price"]),
                "net_amount": amount_number(line["net_amount"]),
                "tax_rate": self._local("tax_rates", line.get("tax_rate_id")),
                "tax_amount": amount_number(line["tax_amount"]),
                "total_amount": amount_number(line["total_amount"]),
            }
            for line in lines
        ]

    def _sales_credit_notes(self, n: Record) -> Json:
        contact = self.store.get(self.business, "contacts", n["contact_id"]) or {}
        return {
            "created_at": _stamp(n.get("_created")),
            "updated_at": _stamp(n.get("_updated")),
            "transaction": self._local("transactions", n.get("transaction_id")),
            "credit_note_number": n["credit_note_number"],
            "contact": self._local("contacts", n["contact_id"]),
            "contact_name": contact.get("name"),
            "contact_reference": contact.get("reference"),
            "date": n["date"],
            "reference": n.get("reference") or None,
            "notes": n.get("notes") or None,
            "currency": self._shared("currencies", n.get("currency_id")),
            "net_amount": amount_number(n["net_amount"]),
            "tax_amount": amount_number(n["tax_amount"]),
            "total_amount": amount_number(n["total_amount"]),
            "outstanding_amount": amount_number(n["outstanding_amount"]),
            "status": link("artefact_statuses", n["status_id"], INVOICE_STATUSES[n["status_id"]]),
            "void_reason": n.get("void_reason"),
            "credit_note_lines": self._lines(n["credit_note_lines"]),
        }

    def _sales_invoices(self, i: Record) -> Json:
        contact = self.store.get(self.business, "contacts", i["contact_id"]) or {}
        return {
            "created_at": _stamp(i.get("_created")),
            "updated_at": _stamp(i.get("_updated")),
            "transaction": self._local("transactions", i.get("transaction_id")),
            "invoice_number": i["invoice_number"],
            "contact": self._local("contacts", i["contact_id"]),
            "contact_name": contact.get("name"),
            "contact_reference": contact.get("reference"),
            "date": i["date"],
            "due_date": i["due_date"],
            "reference": i.get("reference") or None,
            "notes": i.get("notes") or None,
            "currency": self._shared("currencies", i.get("currency_id")),
            "net_amount": amount_number(i["net_amount"]),
            "tax_amount": amount_number(i["tax_amount"]),
            "total_amount": amount_number(i["total_amount"]),
            "outstanding_amount": amount_number(i["outstanding_amount"]),
            "total_paid": amount_number(
                i["total_amount"] - i["outstanding_amount"] if i["status_id"] != "VOID" else 0
            ),
            "status": link("artefact_statuses", i["status_id"], INVOICE_STATUSES[i["status_id"]]),
            "void_reason": i.get("void_reason"),
            "invoice_lines": self._lines(i["invoice_lines"]),
            "deleted_at": _stamp(i.get("_deleted")),
        }

    def _allocated(self, allocations: list[Record], *, discount: bool = True) -> list[Json]:
        """Allocation lines; a payment's carry ``discount`` (``AllocatedPaymentArtefact``),
        a contact allocation's do not (``AllocatedArtefact``)."""
        lines: list[Json] = []
        for a in allocations:
            line: Json = {
                "id": a["id"],
                "artefact": self._local(a["artefact_collection"], a["artefact_id"]),
                "amount": amount_number(a["signed"] if "signed" in a else a["amount"]),
            }
            if discount:
                line["discount"] = amount_number(a.get("discount", 0))
            lines.append(line)
        return lines

    def _contact_payments(self, p: Record) -> Json:
        on_account = None
        if p["on_account"] or p["total_amount"] > sum(
            a["amount"] for a in p["allocated_artefacts"]
        ):
            on_account = {
                "id": p["id"],
                "displayed_as": self.displayed_as("contact_payments", p),
                "$path": f"/contact_payments/{p['id']}",
                "total_amount": amount_number(
                    p["total_amount"] - sum(a["amount"] for a in p["allocated_artefacts"])
                ),
                "outstanding_amount": amount_number(p["on_account"]),
            }
        return {
            "created_at": _stamp(p.get("_created")),
            "updated_at": _stamp(p.get("_updated")),
            "transaction": self._local("transactions", p.get("transaction_id")),
            "transaction_type": link(
                "transaction_types",
                p["transaction_type_id"],
                PAYMENT_TYPES[p["transaction_type_id"]],
            ),
            "payment_method": self._shared("payment_methods", p.get("payment_method_id")),
            "contact": self._local("contacts", p["contact_id"]),
            "bank_account": self._local("bank_accounts", p["bank_account_id"]),
            "date": p["date"],
            "net_amount": amount_number(p["total_amount"]),
            "tax_amount": 0.0,
            "total_amount": amount_number(p["total_amount"]),
            "currency": self._shared("currencies", p.get("currency_id")),
            "reference": p.get("reference") or None,
            "allocated_artefacts": self._allocated(p["allocated_artefacts"]),
            "payment_on_account": on_account,
            "editable": True,
            "deleted_at": _stamp(p.get("_deleted")),
        }

    def _contact_allocations(self, a: Record) -> Json:
        return {
            "created_at": _stamp(a.get("_created")),
            "updated_at": _stamp(a.get("_updated")),
            "transaction_type": link(
                "transaction_types",
                a["transaction_type_id"],
                ALLOCATION_TYPES[a["transaction_type_id"]],
            ),
            "date": a["date"],
            "contact": self._local("contacts", a["contact_id"]),
            "allocated_artefacts": self._allocated(a["allocated_artefacts"], discount=False),
            "deleted_at": _stamp(a.get("_deleted")),
        }

    def _transactions(self, t: Record) -> Json:
        return {
            "created_at": _stamp(t.get("_created")),
            "updated_at": _stamp(t.get("_updated")),
            "transaction_type": link(
                "transaction_types",
                t["transaction_type_id"],
                TRANSACTION_TYPES.get(t["transaction_type_id"], str(t["transaction_type_id"])),
            ),
            "date": t["date"],
            "reference": t.get("reference") or None,
            "total": amount_number(t["total"]),
            "contact": self._local("contacts", t.get("contact_id")),
            "deleted": t["deleted"],
        }

    def _ledger_accounts(self, a: Record) -> Json:
        return {
            "ledger_account_type": link(
                "ledger_account_types", a["ledger_account_type_id"], a["ledger_account_type_name"]
            ),
            "included_in_chart": True,
            "name": a["name"],
            "display_name": a["name"],
            "nominal_code": int(a["nominal_code"]),
        }

    def _bank_accounts(self, b: Record) -> Json:
        return {
            "bank_account_type": link(
                "bank_account_types", b["bank_account_type_id"], b["bank_account_type_name"]
            ),
            "ledger_account": self._local("ledger_accounts", b["ledger_account_id"]),
            "bank_account_details": {
                "account_name": b["name"],
                "account_number": b["account_number"],
            },
            "nominal_code": int(b["nominal_code"]),
            "balance": amount_number(b.get("balance", 0)),
            "currency": self._shared("currencies", b.get("currency_id")),
        }

    def _businesses(self, b: Record) -> Json:
        return {
            "name": b["name"],
            "is_demo": b["is_demo"],
            "created_at": _stamp(b.get("_created")),
            "updated_at": _stamp(b.get("_updated")),
        }

    def _tax_rates(self, t: Record) -> Json:
        return {
            "name": t["name"],
            "percentage": float(Decimal(t["percentage"])),
            "is_visible": True,
        }

    def _base(self, record: Record) -> Json:
        """Reference lists the schema types ``Base``: only id, displayed_as and $path."""
        return {}

    _payment_methods = _currencies = _countries = _contact_types = _base

    def financial_settings(self) -> Json:
        s = self.books.settings(self.business)
        return {
            "$path": "/financial_settings",
            "year_end_date": s["year_end_date"],
            "year_end_lockdown_date": s.get("year_end_lockdown_date"),
            "accounts_start_date": s["accounts_start_date"],
            "base_currency": self._shared("currencies", s["base_currency"]),
            "multi_currency_enabled": s["multi_currency_enabled"],
            "use_live_exchange_rates": False,
            "accounting_type": s["accounting_type"],
        }


def _plain(record: Record) -> Json:
    return {
        k: v for k, v in record.items() if not k.startswith("_") and k not in ("id", "displayed_as")
    }
