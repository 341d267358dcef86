"""The accounting rules of the simulated businesses: what a posting does to the books.

Each method validates everything first and changes state only when the whole request is
acceptable, inside one store unit, so a refused request leaves nothing behind. Amounts are
integer cents. The arithmetic follows SBC:

* a sales invoice adds its total to the contact's balance; allocations lower its
  ``outstanding_amount`` and move ``status`` UNPAID → PART_PAID → PAID;
* a customer receipt lowers the balance by its total; what it does not allocate stays
  on account (``payment_on_account``) and can be allocated later (``contact_allocations``)
  or refunded;
* a customer refund raises the balance; it may be allocated against a receipt's amount
  on account;
* deleting a payment or allocation re-opens what it paid; voiding an invoice is refused
  while payments are allocated to it;
* nothing may be posted, changed or deleted on or before ``year_end_lockdown_date``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.sandbox.sbc import values
from ledgerlink.sandbox.sbc.errors import Problem, SbcError, invalid, invalid_many, not_found
from ledgerlink.sandbox.sbc.store import Record, Store, new_id

CONTACT_TYPES = {"CUSTOMER": "Customer", "VENDOR": "Supplier"}
PAYMENT_TYPES = {
    "CUSTOMER_RECEIPT": "Customer Receipt",
    "CUSTOMER_REFUND": "Customer Refund",
    "VENDOR_PAYMENT": "Supplier Payment",
    "VENDOR_REFUND": "Supplier Refund",
}
#: Which contact type each payment type needs.
PAYMENT_PARTY = {
    "CUSTOMER_RECEIPT": "CUSTOMER",
    "CUSTOMER_REFUND": "CUSTOMER",
    "VENDOR_PAYMENT": "VENDOR",
    "VENDOR_REFUND": "VENDOR",
}
ALLOCATION_TYPES = {
    "CUSTOMER_ALLOCATION": "Customer Allocation",
    "VENDOR_ALLOCATION": "Supplier Allocation",
}
#: ``Contact.reference`` holds at most 10 characters (published schema, api-notes).
REFERENCE_LIMIT = 10
#: ``Address`` lengths in the published schema.
ADDRESS_LIMITS = {
    "address_line_1": 50,
    "address_line_2": 50,
    "city": 50,
    "region": 50,
    "postal_code": 10,
}
INVOICE_STATUSES = {
    "DRAFT": "Draft",
    "UNPAID": "Unpaid",
    "PART_PAID": "Part Paid",
    "PAID": "Paid",
    "VOID": "Void",
    "PRO_FORMA": "Pro-Forma",
}


class Books:
    """Reads and posts for every business of the simulated Sage account."""

    def __init__(self, store: Store, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        #: The simulated Sage server's clock: records' created/updated/deleted times come
        #: from it (tests skew it to play a vendor whose clock is off from ours).
        self.clock = clock
        #: business → lower-cased reference → contact id (live contacts), built on first use.
        self._references: dict[str, dict[str, str]] = {}

    # -- time ---------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now().timestamp()

    @staticmethod
    def today() -> date:
        return datetime.now(UTC).date()

    def _touch(self, record: Record, *, created: bool = False) -> Record:
        moment = self.now()
        if created:
            record["_created"] = moment
        record["_updated"] = moment
        return record

    # -- lookups ------------------------------------------------------------------------

    def businesses(self) -> list[Record]:
        return self.store.all("-", "businesses")

    def business(self, business_id: str) -> Record | None:
        return self.store.get("-", "businesses", business_id)

    def lead_business(self) -> Record:
        return next(b for b in self.businesses() if b.get("lead"))

    def settings(self, business: str) -> Record:
        found = self.store.get(business, "financial_settings", "financial_settings")
        assert found is not None, "every business is seeded with financial settings"
        return found

    def must(self, business: str, collection: str, record_id: Any, what: str) -> Record:
        record = self.store.get(business, collection, str(record_id or ""))
        if record is None or record.get("_deleted"):
            raise not_found(what)
        return record

    def _ref(self, business: str, collection: str, record_id: Any, source: str) -> Record:
        """A record a request body points at, or 422 naming the field."""
        if record_id is None or record_id == "":
            raise invalid(source, "can't be blank")
        record = self.store.get(business, collection, str(record_id))
        if record is None or record.get("_deleted"):
            raise invalid(source, "is invalid (no such record)")
        return record

    def _open_date(self, business: str, posted_on: date, source: str = "date") -> None:
        lockdown = self.settings(business).get("year_end_lockdown_date")
        if lockdown and posted_on <= date.fromisoformat(lockdown):
            raise invalid(
                source,
                f"must be after the year end lockdown date ({lockdown}); the period is locked",
            )

    def _replay(
        self, business: str, collection: str, body: dict[str, Any]
    ) -> tuple[str | None, Record | None]:
        key = values.idempotency_id(body.get("idempotency_id"))
        if key is None:
            return None, None
        return key, self.store.replay(business, collection, key)

    # -- financial settings -----------------------------------------------------------------

    def update_settings(self, business: str, body: dict[str, Any]) -> Record:
        current = dict(self.settings(business))
        for field in ("year_end_lockdown_date", "year_end_date", "accounts_start_date"):
            if field in body:
                parsed = values.iso_date(body[field], field, required=False)
                current[field] = parsed.isoformat() if parsed else None
        if "multi_currency_enabled" in body:
            current["multi_currency_enabled"] = bool(body["multi_currency_enabled"])
        with self.store.unit():
            return self.store.put(business, "financial_settings", self._touch(current))

    # -- contacts -----------------------------------------------------------------------

    def create_contact(self, business: str, body: dict[str, Any]) -> tuple[Record, bool]:
        key, replay = self._replay(business, "contacts", body)
        if replay is not None:
            return replay, True
        contact = self._contact_fields(business, body, {"id": new_id(), "balance": 0})
        with self.store.unit():
            if not contact["reference"]:
                contact["reference"] = self._generated_reference(business, contact["name"])
            self._touch(contact, created=True)
            self._save_contact(business, contact, None)
            if key:
                self.store.remember(business, "contacts", key, contact["id"])
        return contact, False

    def update_contact(self, business: str, contact_id: str, body: dict[str, Any]) -> Record:
        current = self.must(business, "contacts", contact_id, "contact")
        updated = self._contact_fields(business, body, dict(current), partial=True)
        with self.store.unit():
            self._save_contact(business, updated, current.get("reference"))
        return updated

    def delete_contact(self, business: str, contact_id: str) -> None:
        contact = self.must(business, "contacts", contact_id, "contact")
        used = any(
            r.get("contact_id") == contact_id and not r.get("_deleted")
            for collection in ("sales_invoices", "contact_payments")
            for r in self.store.all(business, collection)
        )
        if used:
            raise SbcError(
                422,
                [
                    Problem(
                        "Contact cannot be deleted because it has transactions.",
                        "id",
                        "RecordInvalid",
                    )
                ],
            )
        with self.store.unit():
            contact["_deleted"] = self.now()
            self._save_contact(business, contact, contact.get("reference"))

    def _contact_fields(
        self, business: str, body: dict[str, Any], contact: Record, *, partial: bool = False
    ) -> Record:
        problems: list[Problem] = []

        def take(field: str, parse: Any) -> None:
            if partial and field not in body:
                return
            try:
                contact[field] = parse(body.get(field), field)
            except SbcError as exc:
                problems.extend(exc.problems)

        # Lengths as the published schema's Contact says (reference: 10 characters).
        take("name", lambda v, f: values.text(v, f, required=True, limit=100))
        take("contact_type_ids", self._contact_types)
        take("reference", lambda v, f: values.text(v, f, limit=REFERENCE_LIMIT))
        take("email", _email)
        take("notes", lambda v, f: values.text(v, f, limit=4000))
        take("credit_limit", lambda v, f: values.cents(v, f, required=False))
        take("currency_id", lambda v, f: self._currency(business, v, f))
        if not partial or "main_address" in body:
            contact["main_address"] = self._address(body.get("main_address"), problems)
        if not partial or "main_contact_person" in body:
            contact["main_contact_person"] = _person(body.get("main_contact_person"), problems)
        reference = contact.get("reference") or ""
        if reference and not problems:
            holder = self._reference_index(business).get(reference.lower())
            if holder is not None and holder != contact["id"]:
                problems.append(Problem("has already been taken", "reference"))
        if problems:
            raise invalid_many(problems)
        return contact

    @staticmethod
    def _contact_types(value: Any, source: str) -> list[str]:
        if not value:
            raise invalid(source, "can't be blank")
        if not isinstance(value, list) or any(v not in CONTACT_TYPES for v in value):
            raise invalid(source, f"is invalid (use {', '.join(CONTACT_TYPES)})")
        return list(dict.fromkeys(value))

    def _currency(self, business: str, value: Any, source: str) -> str:
        settings = self.settings(business)
        base = settings["base_currency"]
        if value in (None, ""):
            return str(base)
        if self.store.get("-", "currencies", str(value)) is None:
            raise invalid(source, "is invalid (no such currency)")
        if str(value) != base and not settings.get("multi_currency_enabled"):
            raise invalid(
                source, f"must be {base}: multi-currency is not enabled for this business"
            )
        return str(value)

    def _address(self, value: Any, problems: list[Problem]) -> Record:
        if value is None:
            return {}
        if not isinstance(value, dict):
            problems.append(Problem("must be an object", "main_address"))
            return {}
        address: Record = {}
        for field, limit in ADDRESS_LIMITS.items():
            try:
                address[field] = values.text(value.get(field), f"main_address.{field}", limit=limit)
            except SbcError as exc:
                problems.extend(exc.problems)
        country = value.get("country_id")
        if country:
            if self.store.get("-", "countries", str(country)) is None:
                problems.append(
                    Problem("is invalid (use an ISO 3166 code, e.g. US)", "main_address.country_id")
                )
            else:
                address["country_id"] = str(country)
        return address

    def _generated_reference(self, business: str, name: str) -> str:
        """SBC makes a reference from the name when none is given (``JOHNSM001``)."""
        stem = "".join(ch for ch in name.upper() if ch.isalnum())[:6] or "CONTACT"
        taken = self._reference_index(business)
        number = 1
        while _numbered(stem, number).lower() in taken:
            number += 1
        return _numbered(stem, number)

    def _reference_index(self, business: str) -> dict[str, str]:
        index = self._references.get(business)
        if index is None:
            index = {
                str(c["reference"]).lower(): c["id"]
                for c in self.store.all(business, "contacts")
                if c.get("reference") and not c.get("_deleted")
            }
            self._references[business] = index
        return index

    def _save_contact(self, business: str, contact: Record, previous: str | None) -> None:
        """Store the contact and keep the reference index in step."""
        index = self._reference_index(business)
        if previous and index.get(previous.lower()) == contact["id"]:
            del index[previous.lower()]
        if contact.get("reference") and not contact.get("_deleted"):
            index[str(contact["reference"]).lower()] = contact["id"]
        # How often the API wrote the contact (never answered): the soak counts a member
        # written twice in the state file (bench/soak_checks.py).
        contact["_writes"] = contact.get("_writes", 0) + 1
        self.store.put(business, "contacts", self._touch(contact))

    # -- sales invoices -------------------------------------------------------------------

    def create_invoice(self, business: str, body: dict[str, Any]) -> tuple[Record, bool]:
        key, replay = self._replay(business, "sales_invoices", body)
        if replay is not None:
            return replay, True
        contact, invoice = self._sales_artefact(business, body, "invoice_lines")
        issued = date.fromisoformat(invoice["date"])
        due = values.iso_date(body.get("due_date"), "due_date", required=False)
        if due is not None and due < issued:
            raise invalid("due_date", "must be on or after the invoice date")
        invoice["due_date"] = (due or issued).isoformat()
        with self.store.unit():
            invoice["invoice_number"] = f"SI-{self.store.next_number(f'{business}:invoice')}"
            self._record_artefact(business, "sales_invoices", invoice, key)
            self._post_transaction(business, "SALES_INVOICE", invoice, invoice["total_amount"])
            self._adjust_balance(business, contact, invoice["total_amount"])
        return invoice, False

    def create_credit_note(self, business: str, body: dict[str, Any]) -> tuple[Record, bool]:
        """A sales credit note: money the customer no longer owes (a cancelled membership,
        a goodwill credit). It lowers the contact's balance; ``outstanding_amount`` is the
        credit not yet used."""
        key, replay = self._replay(business, "sales_credit_notes", body)
        if replay is not None:
            return replay, True
        contact, note = self._sales_artefact(business, body, "credit_note_lines")
        with self.store.unit():
            number = self.store.next_number(f"{business}:credit_note")
            note["credit_note_number"] = f"SCN-{number}"
            self._record_artefact(business, "sales_credit_notes", note, key)
            self._post_transaction(business, "SALES_CREDIT_NOTE", note, note["total_amount"])
            self._adjust_balance(business, contact, -note["total_amount"])
        return note, False

    def _sales_artefact(
        self, business: str, body: dict[str, Any], lines_name: str
    ) -> tuple[Record, Record]:
        """What an invoice and a credit note share, checked: (contact, the new record)."""
        contact = self._ref(business, "contacts", body.get("contact_id"), "contact_id")
        if "CUSTOMER" not in contact["contact_type_ids"]:
            raise invalid("contact_id", "is not a customer")
        issued = values.iso_date(body.get("date"), "date")
        assert issued is not None
        self._open_date(business, issued)
        lines = self._invoice_lines(business, body.get(lines_name), lines_name)
        net = sum(line["net_amount"] for line in lines)
        tax = sum(line["tax_amount"] for line in lines)
        return contact, {
            "id": new_id(),
            "contact_id": contact["id"],
            "date": issued.isoformat(),
            "reference": values.text(body.get("reference"), "reference", limit=25),
            "notes": values.text(body.get("notes"), "notes", limit=2000),
            "currency_id": self._currency(
                business, body.get("currency_id") or contact.get("currency_id"), "currency_id"
            ),
            lines_name: lines,
            "net_amount": net,
            "tax_amount": tax,
            "total_amount": net + tax,
            "outstanding_amount": net + tax,
            "status_id": "UNPAID",
            "void_reason": None,
        }

    def _record_artefact(
        self, business: str, collection: str, record: Record, key: str | None
    ) -> None:
        self.store.put(business, collection, self._touch(record, created=True))
        if key:
            self.store.remember(business, collection, key, record["id"])

    def void_credit_note(self, business: str, note_id: str, reason: str) -> Record:
        note = self.must(business, "sales_credit_notes", note_id, "sales credit note")
        if note["status_id"] == "VOID":
            raise invalid("status", "the credit note is already void")
        reason = values.text(reason, "void_reason", required=True, limit=200)
        self._open_date(business, date.fromisoformat(note["date"]))
        with self.store.unit():
            contact = self.must(business, "contacts", note["contact_id"], "contact")
            self._adjust_balance(business, contact, note["total_amount"])
            note.update(status_id="VOID", void_reason=reason.strip(), outstanding_amount=0)
            self.store.put(business, "sales_credit_notes", self._touch(note))
            self._void_transaction(business, note)
        return note

    def _invoice_lines(
        self, business: str, value: Any, name: str = "invoice_lines"
    ) -> list[Record]:
        if not value:
            raise invalid(name, "can't be blank")
        if not isinstance(value, list):
            raise invalid(name, "must be a list")
        lines = []
        for index, raw in enumerate(value):
            where = f"{name}[{index}]"
            if not isinstance(raw, dict):
                raise invalid(where, "must be an object")
            description = values.text(raw.get("description"), f"{where}.description", required=True)
            account = self._ref(
                business,
                "ledger_accounts",
                raw.get("ledger_account_id"),
                f"{where}.ledger_account_id",
            )
            count = values.quantity(raw.get("quantity"), f"{where}.quantity")
            unit = values.cents(raw.get("unit_price"), f"{where}.unit_price")
            rate_id = raw.get("tax_rate_id")
            percentage = Decimal(0)
            if rate_id:
                rate = self._ref(business, "tax_rates", rate_id, f"{where}.tax_rate_id")
                percentage = Decimal(rate["percentage"])
            net = values.round_cents(count * unit)
            tax = values.round_cents(Decimal(net) * percentage / 100)
            lines.append(
                {
                    "id": new_id(),
                    "description": description,
                    "ledger_account_id": account["id"],
                    "quantity": str(count),
                    "unit_price": unit,
                    "tax_rate_id": rate_id or None,
                    "net_amount": net,
                    "tax_amount": tax,
                    "total_amount": net + tax,
                }
            )
        return lines

    def update_invoice(self, business: str, invoice_id: str, body: dict[str, Any]) -> Record:
        invoice = dict(self.must(business, "sales_invoices", invoice_id, "sales invoice"))
        if invoice["status_id"] == "VOID":
            raise invalid("status", "a void invoice cannot be changed")
        self._open_date(business, date.fromisoformat(invoice["date"]))
        paid = invoice["total_amount"] - invoice["outstanding_amount"]
        for field, limit in (("reference", 25), ("notes", 2000)):
            if field in body:
                invoice[field] = values.text(body[field], field, limit=limit)
        if "due_date" in body:
            due = values.iso_date(body["due_date"], "due_date")
            assert due is not None
            invoice["due_date"] = due.isoformat()
        delta = 0
        if "invoice_lines" in body:
            if paid:
                raise invalid(
                    "invoice_lines", "cannot change the lines of an invoice with payments allocated"
                )
            lines = self._invoice_lines(business, body["invoice_lines"])
            net = sum(line["net_amount"] for line in lines)
            tax = sum(line["tax_amount"] for line in lines)
            delta = net + tax - invoice["total_amount"]
            invoice.update(
                invoice_lines=lines,
                net_amount=net,
                tax_amount=tax,
                total_amount=net + tax,
                outstanding_amount=net + tax,
            )
        with self.store.unit():
            self.store.put(business, "sales_invoices", self._touch(invoice))
            if delta:
                contact = self.must(business, "contacts", invoice["contact_id"], "contact")
                self._adjust_balance(business, contact, delta)
        return invoice

    def void_invoice(self, business: str, invoice_id: str, reason: str) -> Record:
        invoice = self.must(business, "sales_invoices", invoice_id, "sales invoice")
        if invoice["status_id"] == "VOID":
            raise invalid("status", "the invoice is already void")
        reason = values.text(reason, "void_reason", required=True, limit=200)
        self._open_date(business, date.fromisoformat(invoice["date"]))
        if invoice["outstanding_amount"] != invoice["total_amount"]:
            raise invalid(
                "id",
                "cannot be voided while payments or credits are allocated to it; delete them first",
            )
        with self.store.unit():
            contact = self.must(business, "contacts", invoice["contact_id"], "contact")
            self._adjust_balance(business, contact, -invoice["total_amount"])
            invoice.update(status_id="VOID", void_reason=reason.strip(), outstanding_amount=0)
            self.store.put(business, "sales_invoices", self._touch(invoice))
            self._void_transaction(business, invoice)
        return invoice

    # -- contact payments -----------------------------------------------------------------

    def create_payment(self, business: str, body: dict[str, Any]) -> tuple[Record, bool]:
        key, replay = self._replay(business, "contact_payments", body)
        if replay is not None:
            return replay, True
        kind = body.get("transaction_type_id")
        if kind in (None, ""):
            raise invalid("transaction_type_id", "can't be blank")
        if kind not in PAYMENT_TYPES:
            raise invalid("transaction_type_id", f"is invalid (use {', '.join(PAYMENT_TYPES)})")
        contact = self._ref(business, "contacts", body.get("contact_id"), "contact_id")
        if PAYMENT_PARTY[kind] not in contact["contact_type_ids"]:
            raise invalid(
                "contact_id", f"must be a {CONTACT_TYPES[PAYMENT_PARTY[kind]].lower()} for {kind}"
            )
        bank = self._ref(business, "bank_accounts", body.get("bank_account_id"), "bank_account_id")
        method = body.get("payment_method_id") or "BANK_TRANSFER"
        if self.store.get("-", "payment_methods", str(method)) is None:
            raise invalid("payment_method_id", "is invalid (no such payment method)")
        posted = values.iso_date(body.get("date"), "date")
        assert posted is not None
        self._open_date(business, posted)
        total = values.cents(body.get("total_amount"), "total_amount", positive=True)
        currency = self._currency(
            business, body.get("currency_id") or contact.get("currency_id"), "currency_id"
        )
        allocations = self._payment_allocations(
            business, kind, contact, body.get("allocated_artefacts")
        )
        allocated = sum(a["amount"] for a in allocations)
        if allocated > total:
            raise invalid(
                "allocated_artefacts",
                f"allocate no more than the total amount ({values.amount_text(total)}); "
                f"{values.amount_text(allocated)} was allocated",
            )
        payment: Record = {
            "id": new_id(),
            "transaction_type_id": kind,
            "contact_id": contact["id"],
            "bank_account_id": bank["id"],
            "payment_method_id": str(method),
            "date": posted.isoformat(),
            "total_amount": total,
            "currency_id": currency,
            "reference": values.text(body.get("reference"), "reference", limit=25),
            "allocated_artefacts": allocations,
            "on_account": total - allocated,
        }
        with self.store.unit():
            self._apply_allocations(business, allocations, sign=1)
            self.store.put(business, "contact_payments", self._touch(payment, created=True))
            self._post_transaction(business, kind, payment, total)
            self._adjust_balance(business, contact, _balance_effect(kind, total))
            if key:
                self.store.remember(business, "contact_payments", key, payment["id"])
        return payment, False

    def _payment_allocations(
        self, business: str, kind: str, contact: Record, value: Any
    ) -> list[Record]:
        if value in (None, []):
            return []
        if not isinstance(value, list):
            raise invalid("allocated_artefacts", "must be a list")
        allocations: list[Record] = []
        pending: dict[str, int] = {}
        for index, raw in enumerate(value):
            where = f"allocated_artefacts[{index}]"
            if not isinstance(raw, dict):
                raise invalid(where, "must be an object")
            amount = values.cents(raw.get("amount"), f"{where}.amount", positive=True)
            discount = values.cents(raw.get("discount"), f"{where}.discount", required=False)
            artefact_id = str(raw.get("artefact_id") or "")
            if not artefact_id:
                raise invalid(f"{where}.artefact_id", "can't be blank")
            collection, artefact = self._artefact(business, artefact_id, f"{where}.artefact_id")
            if artefact.get("contact_id") != contact["id"]:
                raise invalid(f"{where}.artefact_id", "belongs to another contact")
            if kind == "CUSTOMER_RECEIPT" and collection != "sales_invoices":
                raise invalid(f"{where}.artefact_id", "a receipt is allocated to sales invoices")
            if kind == "CUSTOMER_REFUND" and not (
                collection == "contact_payments"
                and artefact["transaction_type_id"] == "CUSTOMER_RECEIPT"
            ):
                raise invalid(
                    f"{where}.artefact_id",
                    "a refund is allocated to a receipt's payment on account",
                )
            open_amount = _open_amount(collection, artefact) - pending.get(artefact_id, 0)
            if amount + discount > open_amount:
                raise invalid(
                    f"{where}.amount",
                    f"exceeds what is outstanding on {_artefact_name(collection, artefact)} "
                    f"({values.amount_text(max(open_amount, 0))})",
                )
            pending[artefact_id] = pending.get(artefact_id, 0) + amount + discount
            allocations.append(
                {
                    "id": new_id(),
                    "artefact_id": artefact_id,
                    "artefact_collection": collection,
                    "amount": amount,
                    "discount": discount,
                }
            )
        return allocations

    def _artefact(self, business: str, artefact_id: str, source: str) -> tuple[str, Record]:
        for collection in ("sales_invoices", "contact_payments"):
            record = self.store.get(business, collection, artefact_id)
            if record is not None and not record.get("_deleted"):
                if collection == "sales_invoices" and record["status_id"] in ("VOID", "DRAFT"):
                    raise invalid(source, f"is a {record['status_id'].lower()} invoice")
                return collection, record
        raise invalid(source, "is invalid (no such artefact)")

    def _apply_allocations(self, business: str, allocations: Iterable[Record], sign: int) -> None:
        """Move the open amounts of the artefacts: ``sign`` 1 to apply, -1 to undo."""
        for allocation in allocations:
            collection = allocation["artefact_collection"]
            artefact = self.store.get(business, collection, allocation["artefact_id"])
            if artefact is None:
                continue
            used = (allocation["amount"] + allocation.get("discount", 0)) * sign
            if collection == "sales_invoices":
                artefact["outstanding_amount"] -= used
                artefact["status_id"] = _invoice_status(artefact)
            else:
                artefact["on_account"] -= used
            self.store.put(business, collection, self._touch(artefact))

    def delete_payment(self, business: str, payment_id: str) -> None:
        payment = self.must(business, "contact_payments", payment_id, "contact payment")
        self._open_date(business, date.fromisoformat(payment["date"]))
        if payment["on_account"] < payment["total_amount"] - sum(
            a["amount"] for a in payment["allocated_artefacts"]
        ):
            raise invalid(
                "id", "its payment on account is allocated or refunded; delete that first"
            )
        with self.store.unit():
            self._apply_allocations(business, payment["allocated_artefacts"], sign=-1)
            contact = self.must(business, "contacts", payment["contact_id"], "contact")
            self._adjust_balance(
                business,
                contact,
                -_balance_effect(payment["transaction_type_id"], payment["total_amount"]),
            )
            payment["_deleted"] = self.now()
            self.store.put(business, "contact_payments", self._touch(payment))
            self._void_transaction(business, payment)

    # -- contact allocations --------------------------------------------------------------

    def create_allocation(self, business: str, body: dict[str, Any]) -> Record:
        """Allocate a receipt's payment on account (negative) to invoices (positive)."""
        kind = body.get("transaction_type_id") or "CUSTOMER_ALLOCATION"
        if kind not in ALLOCATION_TYPES:
            raise invalid("transaction_type_id", f"is invalid (use {', '.join(ALLOCATION_TYPES)})")
        contact = self._ref(business, "contacts", body.get("contact_id"), "contact_id")
        posted = values.iso_date(body.get("date"), "date", required=False) or self.today()
        self._open_date(business, posted)
        raw = body.get("allocated_artefacts")
        if not isinstance(raw, list) or len(raw) < 2:
            raise invalid(
                "allocated_artefacts", "needs at least two artefacts (what pays and what is paid)"
            )
        allocations: list[Record] = []
        balance = 0
        pending: dict[str, int] = {}
        for index, item in enumerate(raw):
            where = f"allocated_artefacts[{index}]"
            if not isinstance(item, dict):
                raise invalid(where, "must be an object")
            collection, artefact = self._artefact(
                business, str(item.get("artefact_id") or ""), f"{where}.artefact_id"
            )
            if artefact.get("contact_id") != contact["id"]:
                raise invalid(f"{where}.artefact_id", "belongs to another contact")
            signed = _signed_cents(item.get("amount"), f"{where}.amount")
            expected_sign = 1 if collection == "sales_invoices" else -1
            if signed * expected_sign <= 0:
                raise invalid(
                    f"{where}.amount",
                    "must be positive for invoices and negative for payments on account",
                )
            amount = abs(signed)
            open_amount = _open_amount(collection, artefact) - pending.get(artefact["id"], 0)
            if amount > open_amount:
                raise invalid(
                    f"{where}.amount",
                    f"exceeds what is outstanding on {_artefact_name(collection, artefact)} "
                    f"({values.amount_text(max(open_amount, 0))})",
                )
            pending[artefact["id"]] = pending.get(artefact["id"], 0) + amount
            balance += signed
            allocations.append(
                {
                    "id": new_id(),
                    "artefact_id": artefact["id"],
                    "artefact_collection": collection,
                    "amount": amount,
                    "discount": 0,
                    "signed": signed,
                }
            )
        if balance != 0:
            raise invalid("allocated_artefacts", "the amounts must add up to zero")
        allocation: Record = {
            "id": new_id(),
            "transaction_type_id": kind,
            "contact_id": contact["id"],
            "date": posted.isoformat(),
            "allocated_artefacts": allocations,
        }
        with self.store.unit():
            self._apply_allocations(business, allocations, sign=1)
            self.store.put(business, "contact_allocations", self._touch(allocation, created=True))
        return allocation

    def delete_allocation(self, business: str, allocation_id: str) -> None:
        allocation = self.must(business, "contact_allocations", allocation_id, "contact allocation")
        self._open_date(business, date.fromisoformat(allocation["date"]))
        with self.store.unit():
            self._apply_allocations(business, allocation["allocated_artefacts"], sign=-1)
            allocation["_deleted"] = self.now()
            self.store.put(business, "contact_allocations", self._touch(allocation))

    # -- ledger side effects ------------------------------------------------------------------

    def _adjust_balance(self, business: str, contact: Record, delta: int) -> None:
        contact["balance"] = contact.get("balance", 0) + delta
        self.store.put(business, "contacts", self._touch(contact))

    def _post_transaction(self, business: str, kind: str, origin: Record, total: int) -> None:
        transaction = {
            "id": new_id(),
            "transaction_type_id": kind,
            "date": origin["date"],
            "reference": origin.get("reference") or origin.get("invoice_number") or "",
            "total": total,
            "contact_id": origin.get("contact_id"),
            "origin_id": origin["id"],
            "deleted": False,
        }
        origin["transaction_id"] = transaction["id"]
        self.store.put(business, "transactions", self._touch(transaction, created=True))

    def _void_transaction(self, business: str, origin: Record) -> None:
        transaction = self.store.get(business, "transactions", origin.get("transaction_id") or "")
        if transaction is not None:
            transaction["deleted"] = True
            self.store.put(business, "transactions", self._touch(transaction))


def _numbered(stem: str, number: int) -> str:
    """``stem`` and a 3-digit (or longer) counter, cut to fit a reference."""
    digits = f"{number:03d}"
    return f"{stem[: REFERENCE_LIMIT - len(digits)]}{digits}"


def _balance_effect(kind: str, total: int) -> int:
    """What a payment does to the contact's balance (what they owe us, for customers)."""
    return -total if kind in ("CUSTOMER_RECEIPT", "VENDOR_PAYMENT") else total


def _invoice_status(invoice: Record) -> str:
    if invoice["status_id"] in ("VOID", "DRAFT", "PRO_FORMA"):
        return str(invoice["status_id"])
    if invoice["outstanding_amount"] <= 0:
        return "PAID"
    if invoice["outstanding_amount"] < invoice["total_amount"]:
        return "PART_PAID"
    return "UNPAID"


def _open_amount(collection: str, artefact: Record) -> int:
    return int(
        artefact["outstanding_amount"] if collection == "sales_invoices" else artefact["on_account"]
    )


def _artefact_name(collection: str, artefact: Record) -> str:
    if collection == "sales_invoices":
        return f"invoice {artefact['invoice_number']}"
    return f"payment {artefact.get('reference') or artefact['id']}"


def _signed_cents(value: Any, source: str) -> int:
    text = str(value if value is not None else "").strip()
    negative = text.startswith("-")
    amount = values.cents(text.lstrip("-") if text else value, source, positive=True)
    return -amount if negative else amount


def _email(value: Any, source: str) -> str:
    result = values.text(value, source, limit=100)
    if result and (
        "@" not in result or " " in result or result.startswith("@") or result.endswith("@")
    ):
        raise invalid(source, "is invalid")
    return result


def _person(value: Any, problems: list[Problem]) -> Record:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(Problem("must be an object", "main_contact_person"))
        return {}
    person: Record = {}
    for field in ("name", "telephone", "mobile"):
        try:
            person[field] = values.text(value.get(field), f"main_contact_person.{field}", limit=50)
        except SbcError as exc:
            problems.extend(exc.problems)
    try:
        person["email"] = _email(value.get("email"), "main_contact_person.email")
    except SbcError as exc:
        problems.extend(exc.problems)
    return person
