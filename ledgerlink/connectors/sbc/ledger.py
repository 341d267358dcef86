"""The SBC ledger: customers (contacts), sales invoices and contact payments."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from ledgerlink.connectors.base import CheckResult, NewInvoices
from ledgerlink.connectors.errors import Misconfigured, NotFound, Rejected, UpstreamError
from ledgerlink.connectors.http import Auth, RetryPolicy, UpstreamClient
from ledgerlink.connectors.sbc import invoice_lines, references, shapes
from ledgerlink.connectors.sbc.errors import classify
from ledgerlink.connectors.throttle import TokenBucket, shared_bucket
from ledgerlink.domain.accounts import (
    CustomerAccount,
    CustomerDraft,
    Invoice,
    InvoiceStatus,
    LedgerCreditNote,
    LedgerPayment,
    PostedReceipt,
    ReceiptRequest,
    ReceiptReversal,
    RefundRequest,
)
from ledgerlink.domain.invoice_lines import InvoiceDetail
from ledgerlink.domain.money import Money

PAGE_SIZE = 200  # SBC's maximum
READ_AHEAD = 4  # pages in flight while reading a collection
#: How far before the mark new invoices are read again: SBC stamps ``created_at`` when it
#: starts saving, so an invoice saved slowly can appear after a later one was read.
NEW_INVOICE_OVERLAP = timedelta(minutes=2)


@dataclass(frozen=True)
class SbcOptions:
    api_base_url: str
    business_id: str | None = None
    receipt_bank_account_id: str | None = None
    payment_method_id: str = "CREDIT_DEBIT"
    rate_limit_per_minute: int = 100  # 0: no client-side limit
    max_connections: int = 64


INVOICE_ATTRIBUTES = (
    "invoice_number,contact,date,due_date,total_amount,outstanding_amount,status,currency,"
    "updated_at"
)


def _decimal_json(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


class SbcLedger:
    system = "sbc"

    def __init__(
        self,
        options: SbcOptions,
        auth: Auth,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.options = options
        throttle: TokenBucket | None = None
        if options.rate_limit_per_minute:
            throttle = shared_bucket(
                ("sbc", options.business_id or "lead"), options.rate_limit_per_minute
            )
        headers = {"Accept": "application/json"}
        if options.business_id:
            headers["X-Business"] = options.business_id
        self.client = UpstreamClient(
            "sbc",
            options.api_base_url,
            classify=classify,
            auth=auth,
            throttle=throttle,
            policy=policy,
            transport=transport,
            headers=headers,
            max_connections=options.max_connections,
        )
        self._base_currency: str | None = None

    async def __aenter__(self) -> SbcLedger:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- plumbing -----------------------------------------------------------------------

    async def _get(self, path: str, params: dict[str, Any] | None = None, what: str = "") -> Any:
        try:
            response = await self.client.request("GET", path, params=params)
        except NotFound as exc:
            raise NotFound("sbc", f"Sage has no {what or path}: {exc.message}", status=404) from exc
        return _decimal_json(response)

    async def _write(
        self,
        method: str,
        path: str,
        resource: str,
        body: dict[str, Any],
        what: str,
        idempotent: bool,
    ) -> tuple[dict[str, Any], int]:
        try:
            response = await self.client.request(
                method, path, json={resource: body}, idempotent=idempotent
            )
        except UpstreamError as exc:
            # The shared classifier cannot know which record this was: name it.
            exc.message = exc.message.replace("the request", what, 1)
            raise
        return _decimal_json(response), response.status_code

    async def pages(
        self, path: str, params: dict[str, Any] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a collection, 200 per page with all attributes, in order.

        The first page says how many there are; the rest are read a few at a time
        (``READ_AHEAD`` in flight) so that reading and Sage's answering overlap. The
        client-side rate limit still spaces every request.
        """
        query: dict[str, Any] = {"items_per_page": PAGE_SIZE, "attributes": "all", **(params or {})}
        body = await self._get(path, query)
        for item in body.get("$items") or []:
            yield item
        # /businesses spells it $items_per_page (Sage's guide); the rest $itemsPerPage.
        per_page = body.get("$itemsPerPage") or body.get("$items_per_page") or PAGE_SIZE
        total = body.get("$total")
        if not body.get("$next"):
            return
        if not isinstance(total, int):  # no count: follow $next one page at a time
            next_path: str | None = body["$next"]
            while next_path:
                extra = None if "attributes=" in next_path else {"attributes": "all"}
                body = await self._get(next_path, extra)
                for item in body.get("$items") or []:
                    yield item
                next_path = body.get("$next")
            return
        last = -(-total // int(per_page))
        waiting: deque[asyncio.Task[Any]] = deque()
        numbers = iter(range(2, last + 1))
        try:
            for number in itertools.islice(numbers, READ_AHEAD):
                waiting.append(asyncio.create_task(self._get(path, {**query, "page": number})))
            while waiting:
                body = await waiting.popleft()
                number_next = next(numbers, None)
                if number_next is not None:
                    waiting.append(
                        asyncio.create_task(self._get(path, {**query, "page": number_next}))
                    )
                for item in body.get("$items") or []:
                    yield item
        finally:
            for task in waiting:
                task.cancel()

    async def base_currency(self) -> str:
        if self._base_currency is None:
            settings = await self._get("/financial_settings", what="financial settings")
            self._base_currency = shapes._link_id(settings.get("base_currency")) or "USD"
        return self._base_currency

    # -- Ledger port --------------------------------------------------------------------

    async def check(self) -> list[CheckResult]:
        results: list[CheckResult] = []
        try:
            businesses = await self._get("/businesses", what="businesses")
        except UpstreamError as exc:
            results.append(CheckResult.from_error("credentials", exc))
            return results
        results.append(CheckResult("reachable", True, "Sage answered"))
        results.append(CheckResult("credentials", True, "the access token is accepted"))
        items = businesses.get("$items", businesses) if isinstance(businesses, dict) else businesses
        ids = {str(b.get("id")): str(b.get("name") or b.get("displayed_as")) for b in items}
        if self.options.business_id and self.options.business_id not in ids:
            results.append(
                CheckResult(
                    "business",
                    False,
                    f"business {self.options.business_id} is not among those this user can reach "
                    f"({', '.join(ids.values()) or 'none'}); pick one under Accounting Integration",
                )
            )
            return results
        chosen = ids.get(self.options.business_id or "", "the lead business")
        results.append(CheckResult("business", True, f"using {chosen}"))
        try:
            settings = await self._get("/financial_settings", what="financial settings")
            results.append(
                CheckResult(
                    "permissions",
                    True,
                    f"financial settings readable; base currency "
                    f"{shapes._link_id(settings.get('base_currency')) or '?'}",
                )
            )
        except UpstreamError as exc:
            results.append(CheckResult.from_error("permissions", exc))
        if self.options.receipt_bank_account_id:
            try:
                await self._get(
                    f"/bank_accounts/{self.options.receipt_bank_account_id}",
                    what="receipt bank account",
                )
                results.append(CheckResult("bank account", True, "receipt bank account exists"))
            except UpstreamError as exc:
                results.append(CheckResult.from_error("bank account", exc))
        return results

    async def customers(
        self, *, changed_since: datetime | None = None
    ) -> AsyncIterator[CustomerAccount]:
        currency = await self.base_currency()
        params: dict[str, Any] = {"contact_type_id": "CUSTOMER"}
        if changed_since is not None:
            params["updated_or_created_since"] = changed_since.isoformat()
        async for item in self.pages("/contacts", params):
            yield shapes.customer(item, currency)
        if changed_since is not None:
            async for item in self.pages("/contacts", {"deleted_since": changed_since.isoformat()}):
                yield shapes.customer(item, currency, deleted=True)

    async def get_customer(self, customer_id: str) -> CustomerAccount:
        item = await self._get(f"/contacts/{customer_id}", what=f"contact {customer_id}")
        return shapes.customer(item, await self.base_currency())

    async def find_customer(self, number: str) -> CustomerAccount | None:
        """The contact holding member ``number``: by reference, or for a number longer
        than a reference holds, by its short references in order (:mod:`references`)."""
        currency = await self.base_currency()
        for reference in references.candidates(number):
            holders = await self._holders(reference)
            for item in holders:
                if shapes.contact_member_number(item) == number:
                    return shapes.customer(item, currency)
            if not holders:
                return None  # a reference nobody holds: the member would have got it
        return None

    async def _holders(self, reference: str) -> list[dict[str, Any]]:
        """Contacts whose reference is exactly ``reference`` (any case, as Sage compares)."""
        wanted = reference.upper()
        return [
            item
            async for item in self.pages("/contacts", {"search": reference})
            if str(item.get("reference") or "").upper() == wanted
        ]

    async def _free_reference(self, number: str, contact_id: str | None = None) -> str:
        """The reference for a member number too long for one: the first candidate no
        other contact holds (``contact_id`` may hold it: it is the member's own)."""
        for reference in references.candidates(number):
            holders = await self._holders(reference)
            if all(
                item.get("id") == contact_id or shapes.contact_member_number(item) == number
                for item in holders
            ):
                return reference
        raise Rejected(
            "sbc",
            f"member number {number} is longer than the {references.REFERENCE_LIMIT} "
            f"characters a Sage contact reference holds, and each of the "
            f"{references.MAX_CANDIDATES} short references made from it is taken by "
            "another contact; rename one of those references in Sage, or shorten the number",
            field="reference",
        )

    async def create_customer(self, draft: CustomerDraft, idempotency_key: str) -> CustomerAccount:
        reference, notes = None, None
        if not references.fits(draft.number):
            reference = await self._free_reference(draft.number)
            notes = references.with_member_number(None, draft.number)
        item, _ = await self._write(
            "POST",
            "/contacts",
            "contact",
            shapes.contact_body(draft, idempotency_key, reference=reference, notes=notes),
            f"the contact {draft.name!r}",
            idempotent=True,
        )
        return shapes.customer(item, await self.base_currency())

    async def update_customer(self, customer_id: str, draft: CustomerDraft) -> CustomerAccount:
        reference, notes = None, None
        if not references.fits(draft.number):
            # Keep what a user wrote in the notes; keep the contact's own short reference.
            current = await self._get(f"/contacts/{customer_id}", what=f"contact {customer_id}")
            notes = references.with_member_number(current.get("notes"), draft.number)
            kept = str(current.get("reference") or "")
            if kept in set(references.candidates(draft.number)):
                reference = kept
            else:
                reference = await self._free_reference(draft.number, customer_id)
        item, _ = await self._write(
            "PUT",
            f"/contacts/{customer_id}",
            "contact",
            shapes.contact_body(draft, None, reference=reference, notes=notes),
            f"the contact {draft.name!r}",
            idempotent=True,
        )
        return shapes.customer(item, await self.base_currency())

    async def invoices(
        self,
        *,
        customer_id: str | None = None,
        open_only: bool = True,
        changed_since: datetime | None = None,
    ) -> AsyncIterator[Invoice]:
        currency = await self.base_currency()
        params: dict[str, Any] = {}
        if customer_id:
            params["contact_id"] = customer_id
        if changed_since is not None:
            params["updated_or_created_since"] = changed_since.isoformat()
        async for item in self.pages("/sales_invoices", params):
            found = shapes.invoice(item, currency)
            if not open_only or found.is_open:
                yield found

    async def invoices_created_after(
        self, mark: str | None, *, floor: str | None = None
    ) -> NewInvoices:
        """Open (not draft) invoices whose ``created_at`` is after ``mark`` less
        :data:`NEW_INVOICE_OVERLAP`, read by ``updated_or_created_since`` (SBC has no
        "created since"; invoices only updated since are dropped here), never from before
        ``floor``, and the largest ``created_at`` seen. ``mark=None``: the newest
        invoice's ``created_at`` only."""
        if mark is None:
            body = await self._get(
                "/sales_invoices",
                {"items_per_page": 1, "sort": "created_at:desc", "attributes": "created_at"},
            )
            newest = _created_at((body.get("$items") or [{}])[0].get("created_at"))
            if newest is None:
                return NewInvoices((), "")
            same = [
                str(item["id"])
                async for item in self.pages(
                    "/sales_invoices", {"updated_or_created_since": newest.isoformat()}
                )
                if _created_at(item.get("created_at")) == newest
            ]
            return NewInvoices((), newest.isoformat(), tuple(same))
        currency = await self.base_currency()
        top = _created_at(mark)
        params: dict[str, Any] = {}
        since = top - NEW_INVOICE_OVERLAP if top is not None else None
        lowest = _created_at(floor)
        if since is not None and lowest is not None and since < lowest:
            since = lowest
        if since is not None:
            params["updated_or_created_since"] = since.isoformat()
        found: list[Invoice] = []
        async for item in self.pages("/sales_invoices", params):
            created = _created_at(item.get("created_at"))
            if created is None or (since is not None and created < since):
                continue
            top = created if top is None or created > top else top
            invoice = shapes.invoice(item, currency)
            if invoice.is_open and invoice.status is not InvoiceStatus.DRAFT:
                found.append(invoice)
        return NewInvoices(tuple(found), top.isoformat() if top is not None else "")

    async def credit_notes(
        self, *, changed_since: datetime | None = None
    ) -> AsyncIterator[LedgerCreditNote]:
        """Sales credit notes (and, with ``changed_since``, those voided since: ``deleted``)."""
        currency = await self.base_currency()
        params: dict[str, Any] = {}
        if changed_since is not None:
            params["updated_or_created_since"] = changed_since.isoformat()
        async for item in self.pages("/sales_credit_notes", params):
            note = shapes.invoice(
                {**item, "invoice_number": item.get("credit_note_number")}, currency
            )
            yield LedgerCreditNote(
                id=note.id,
                customer_id=note.customer_id,
                number=note.number,
                on=note.date,
                amount=note.total,
                unallocated=note.outstanding,
                status=note.status.value,
                deleted=note.status.value == "void",
                updated_at=note.updated_at,
            )

    async def find_invoice(self, number: str) -> Invoice | None:
        """The sales invoice whose ``invoice_number`` is ``number`` (open or not)."""
        wanted = number.strip()
        currency = await self.base_currency()
        # Only what an Invoice holds: no lines (a payment looks invoices up one by one).
        query = {"search": wanted, "items_per_page": 20, "attributes": INVOICE_ATTRIBUTES}
        async for item in self.pages("/sales_invoices", query):
            if str(item.get("invoice_number") or "").strip() == wanted:
                return shapes.invoice(item, currency)
        return None

    async def invoice_lines(self, invoice_id: str) -> InvoiceDetail:
        """The sales invoice's ``invoice_lines`` (one read of the invoice), for Level 3."""
        currency = await self.base_currency()
        item = await self._get(f"/sales_invoices/{invoice_id}", what=f"sales invoice {invoice_id}")
        return invoice_lines.invoice_detail(item, currency)

    async def payments(
        self, *, changed_since: datetime | None = None
    ) -> AsyncIterator[LedgerPayment]:
        """Customer receipts and refunds (and, with ``changed_since``, those deleted since)."""
        currency = await self.base_currency()
        kinds = {"CUSTOMER_RECEIPT": "receipt", "CUSTOMER_REFUND": "refund"}
        params: dict[str, Any] = {}
        if changed_since is not None:
            params["updated_or_created_since"] = changed_since.isoformat()
        async for item in self.pages("/contact_payments", params):
            kind = kinds.get(shapes._link_id(item.get("transaction_type")))
            if kind is None:
                continue
            amount = shapes.money(item.get("total_amount"), currency)
            applied = tuple(
                (shapes._link_id(a.get("artefact")), shapes.money(a.get("amount"), currency))
                for a in item.get("allocated_artefacts") or []
            )
            yield LedgerPayment(
                id=str(item["id"]),
                kind=kind,
                customer_id=shapes._link_id(item.get("contact")),
                on=shapes._date(item.get("date")) or date.min,
                amount=amount,
                unallocated=amount - sum((a for _, a in applied), Money.zero(currency)),
                reference=str(item.get("reference") or ""),
                applied=applied,
                updated_at=shapes._datetime(item.get("updated_at")),
            )
        if changed_since is not None:
            async for item in self.pages(
                "/contact_payments", {"deleted_since": changed_since.isoformat()}
            ):
                yield LedgerPayment(
                    id=str(item["id"]),
                    kind="receipt",
                    customer_id="",
                    on=date.min,
                    amount=Money.zero(currency),
                    unallocated=Money.zero(currency),
                    reference="",
                    deleted=True,
                    updated_at=shapes._datetime(item.get("deleted_at")),
                )

    async def post_receipt(self, receipt: ReceiptRequest) -> PostedReceipt:
        return await self._payment(
            "CUSTOMER_RECEIPT",
            receipt.idempotency_key,
            receipt.customer_id,
            receipt.date,
            receipt.amount,
            receipt.applications,
            receipt.reference,
            "the receipt",
            payment_method_id=receipt.payment_method_id,
            bank_account_id=receipt.bank_account_id,
        )

    async def post_refund(self, refund: RefundRequest) -> PostedReceipt:
        """A customer refund. In SBC a refund cannot re-open an invoice: its applications
        name the receipts whose money on account it pays back. To undo a payment that was
        applied to invoices (a chargeback), use :meth:`reverse_receipt`."""
        return await self._payment(
            "CUSTOMER_REFUND",
            refund.idempotency_key,
            refund.customer_id,
            refund.date,
            refund.amount,
            refund.applications,
            refund.reference,
            "the refund",
            bank_account_id=refund.bank_account_id,
        )

    async def _payment(
        self,
        kind: str,
        key: str,
        customer_id: str,
        when: date,
        amount: Any,
        applications: Any,
        reference: str,
        what: str,
        *,
        payment_method_id: str = "",
        bank_account_id: str = "",
    ) -> PostedReceipt:
        if not (bank_account_id or self.options.receipt_bank_account_id):
            raise Misconfigured(
                "sbc",
                "No bank account is chosen for card receipts; pick one under "
                "Accounting Integration → Sage Business Cloud",
            )
        body = {
            "transaction_type_id": kind,
            "contact_id": customer_id,
            "bank_account_id": bank_account_id or self.options.receipt_bank_account_id,
            "payment_method_id": payment_method_id or self.options.payment_method_id,
            "date": when.isoformat(),
            "total_amount": shapes.amount_text(amount),
            "reference": reference[:25] if reference else None,
            "allocated_artefacts": [
                {"artefact_id": a.invoice_id, "amount": shapes.amount_text(a.amount)}
                for a in applications
            ],
            "idempotency_id": shapes.idempotency_id(key),
        }
        item, status = await self._write(
            "POST", "/contact_payments", "contact_payment", body, what, idempotent=True
        )
        # SBC answers a repeated idempotency_id with the original record; the sandbox (and,
        # as far as documented, SBC) uses 200 rather than 201 for such a replay.
        return shapes.posted_payment(item, key, amount.currency, replayed=status == 200)

    #: An SBC refund pays money on account back; it cannot re-open an invoice.
    refunds_reopen_invoices = False

    async def reverse_posted_receipt(self, reversal: ReceiptReversal) -> PostedReceipt:
        """Undo a card receipt the SBC way: delete it (:meth:`reverse_receipt`), which
        re-opens what it paid. Nothing new is posted, so the answer names the receipt."""
        await self.reverse_receipt(reversal.receipt_id)
        undoing = reversal.undoing
        return PostedReceipt(
            self.system,
            reversal.receipt_id,
            undoing.idempotency_key,
            undoing.amount,
            sum((a.amount for a in undoing.applications), Money.zero(undoing.amount.currency)),
        )

    async def reverse_receipt(self, payment_id: str, *, deleted_after: date | None = None) -> None:
        """Delete a receipt (or refund) in SBC, which re-opens the invoices it paid: how a
        chargeback undoes a card payment. Deleting one that is already deleted (a retry
        after a lost reply) is not an error; an id Sage never had is."""
        try:
            await self.client.request("DELETE", f"/contact_payments/{payment_id}")
            return
        except NotFound:
            pass
        except UpstreamError as exc:
            exc.message = exc.message.replace("the request", f"deleting payment {payment_id}", 1)
            raise
        since = deleted_after or date.today().replace(year=date.today().year - 1)
        async for item in self.pages("/contact_payments", {"deleted_since": since.isoformat()}):
            if str(item.get("id")) == payment_id:
                return
        raise NotFound("sbc", f"Sage has no contact payment {payment_id} to delete", status=404)

    async def create_invoice(
        self,
        customer_id: str,
        issued: date,
        lines: list[shapes.InvoiceLine],
        idempotency_key: str,
        *,
        reference: str = "",
        due: date | None = None,
    ) -> Invoice:
        """A sales invoice (membership dues, say), posted once per idempotency key."""
        body: dict[str, Any] = {
            "contact_id": customer_id,
            "date": issued.isoformat(),
            "due_date": (due or issued).isoformat(),
            "reference": reference or None,
            "invoice_lines": [line.body() for line in lines],
            "idempotency_id": shapes.idempotency_id(idempotency_key),
        }
        item, _ = await self._write(
            "POST", "/sales_invoices", "sales_invoice", body, "the invoice", idempotent=True
        )
        return shapes.invoice(item, await self.base_currency())

    async def allocate(
        self, customer_id: str, on: date, parts: list[tuple[str, Money]]
    ) -> dict[str, Any]:
        """Move money on account onto invoices: ``parts`` are (artefact id, amount) with
        invoices positive and payments on account negative, adding up to zero."""
        body = {
            "transaction_type_id": "CUSTOMER_ALLOCATION",
            "contact_id": customer_id,
            "date": on.isoformat(),
            "allocated_artefacts": [
                {"artefact_id": artefact, "amount": shapes.amount_text(amount)}
                for artefact, amount in parts
            ],
        }
        # No idempotency id exists for allocations: a repeat after a lost reply is refused
        # by Sage (nothing left to allocate), so it is not retried blindly.
        item, _ = await self._write(
            "POST",
            "/contact_allocations",
            "contact_allocation",
            body,
            "the allocation",
            idempotent=False,
        )
        return dict(item)

    async def find_receipt(self, idempotency_key: str) -> PostedReceipt | None:
        """SBC cannot look payments up by idempotency id; re-posting with the same id is
        the documented way to learn the outcome, so callers simply post again."""
        return None

    async def currency_digits(self) -> dict[str, int]:
        return {str(item["id"]): 2 async for item in self.pages("/currencies")}

    async def lockdown_date(self) -> date | None:
        settings = await self._get("/financial_settings", what="financial settings")
        return shapes._date(settings.get("year_end_lockdown_date"))

    async def businesses(self) -> list[dict[str, str]]:
        body = await self._get("/businesses", what="businesses")
        items = body.get("$items", []) if isinstance(body, dict) else body
        return [
            {"id": str(b["id"]), "name": str(b.get("name") or b.get("displayed_as"))} for b in items
        ]

    async def lookup(self, collection: str) -> list[dict[str, Any]]:
        """Reference lists for the settings pages: ledger_accounts, bank_accounts,
        payment_methods, tax_rates, currencies."""
        return [item async for item in self.pages(f"/{collection}")]


def _created_at(value: Any) -> datetime | None:
    """SBC's ``created_at`` (or a mark made of one) as a datetime; None when empty."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
