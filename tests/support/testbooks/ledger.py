"""An in-memory ledger system (:class:`Books`, standing for a vendor's service) and its
adapter (:class:`BooksLedger`), implementing the whole ledger port: customers, invoices,
history, receipts with idempotency keys, reversals, a lockdown date and credentials."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from decimal import Decimal

from ledgerlink.connectors.base import CheckResult, NewInvoices
from ledgerlink.connectors.errors import AuthExpired, NotFound, Rejected
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
from ledgerlink.domain.invoice_lines import InvoiceDetail, InvoiceLine
from ledgerlink.domain.money import Money

SYSTEM = "testbooks"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Books:
    """One company's books in the in-memory system."""

    api_key: str
    currency: str = "USD"
    lockdown: dt.date | None = None
    customers: dict[str, CustomerAccount] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    payments: dict[str, LedgerPayment] = field(default_factory=dict)
    postings: dict[str, PostedReceipt] = field(default_factory=dict)  # by idempotency key
    created: dict[str, str] = field(default_factory=dict)  # customer key → id
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def seed(self, people: int) -> None:
        """Customers, each with an open invoice of 50.00."""
        for n in range(1, people + 1):
            customer = CustomerAccount(
                SYSTEM,
                f"C{n}",
                f"TB{n:05d}",
                f"Member {n}",
                currency=self.currency,
                updated_at=_now(),
            )
            self.customers[customer.id] = customer
            total = Money(5_000, self.currency)
            invoice = Invoice(
                SYSTEM,
                f"I{n}",
                f"TBI-{n:05d}",
                customer.id,
                dt.date.today(),
                None,
                total,
                total,
                InvoiceStatus.UNPAID,
                updated_at=_now(),
            )
            self.invoices[invoice.id] = invoice

    def add_invoice(self, customer_id: str, amount: Money) -> Invoice:
        """An invoice raised in the books (as the vendor's own screens would)."""
        n = len(self.invoices) + 1
        invoice = Invoice(
            SYSTEM,
            f"I{n}",
            f"TBI-{n:05d}",
            customer_id,
            dt.date.today(),
            dt.date.today() + dt.timedelta(days=30),
            amount,
            amount,
            InvoiceStatus.UNPAID,
            updated_at=_now(),
        )
        self.invoices[invoice.id] = invoice
        return invoice


#: The in-memory systems a Test Books connection can reach, by the name in its settings.
SYSTEMS: dict[str, Books] = {}


class BooksLedger:
    """The Test Books adapter."""

    system = SYSTEM
    refunds_reopen_invoices = True

    def __init__(self, books: Books, api_key: str) -> None:
        self.books = books
        self.api_key = api_key

    def _authorised(self) -> Books:
        if self.api_key != self.books.api_key:
            raise AuthExpired(SYSTEM, "Test Books refused the API key; enter the current one")
        return self.books

    async def check(self) -> list[CheckResult]:
        if self.api_key != self.books.api_key:
            return [CheckResult("credentials", False, "Test Books refused the API key")]
        return [
            CheckResult("reachable", True, "Test Books answered"),
            CheckResult("credentials", True, "the API key is accepted"),
        ]

    async def aclose(self) -> None:
        return None

    # -- customers -----------------------------------------------------------------------------

    async def customers(
        self, *, changed_since: dt.datetime | None = None
    ) -> AsyncIterator[CustomerAccount]:
        for customer in list(self._authorised().customers.values()):
            if changed_since is None or (customer.updated_at or _now()) >= changed_since:
                yield customer

    async def get_customer(self, customer_id: str) -> CustomerAccount:
        found = self._authorised().customers.get(customer_id)
        if found is None:
            raise NotFound(SYSTEM, f"Test Books has no customer {customer_id}", status=404)
        return found

    async def find_customer(self, number: str) -> CustomerAccount | None:
        books = self._authorised()
        return next((c for c in books.customers.values() if c.number == number), None)

    async def create_customer(self, draft: CustomerDraft, idempotency_key: str) -> CustomerAccount:
        books = self._authorised()
        if idempotency_key in books.created:
            return books.customers[books.created[idempotency_key]]
        if await self.find_customer(draft.number) is not None:
            raise Rejected(SYSTEM, f"customer {draft.number} exists", 422, field="number")
        customer = CustomerAccount(
            SYSTEM,
            f"C{next(books.ids) + 10_000}",
            draft.number,
            draft.name,
            draft.email,
            draft.phone,
            draft.address,
            draft.currency,
            updated_at=_now(),
        )
        books.customers[customer.id] = customer
        books.created[idempotency_key] = customer.id
        return customer

    async def update_customer(self, customer_id: str, draft: CustomerDraft) -> CustomerAccount:
        current = await self.get_customer(customer_id)
        changed = replace(
            current,
            name=draft.name,
            email=draft.email,
            phone=draft.phone,
            address=draft.address,
            updated_at=_now(),
        )
        self.books.customers[customer_id] = changed
        return changed

    # -- invoices and history --------------------------------------------------------------

    async def invoices(
        self,
        *,
        customer_id: str | None = None,
        open_only: bool = True,
        changed_since: dt.datetime | None = None,
    ) -> AsyncIterator[Invoice]:
        for invoice in list(self._authorised().invoices.values()):
            if customer_id is not None and invoice.customer_id != customer_id:
                continue
            if open_only and invoice.outstanding.minor <= 0:
                continue
            yield invoice

    async def invoices_created_after(
        self, mark: str | None, *, floor: str | None = None
    ) -> NewInvoices:
        """Test Books keeps invoices in the order they were raised: a mark is how many
        there were (no overlap is needed: nothing commits late in memory)."""
        invoices = list(self._authorised().invoices.values())
        if mark is None:
            return NewInvoices((), str(len(invoices)))
        after = max(int(mark) if mark.isdigit() else 0, int(floor or 0))
        fresh = tuple(i for i in invoices[after:] if i.outstanding.minor > 0)
        return NewInvoices(fresh, str(len(invoices)))

    async def find_invoice(self, number: str) -> Invoice | None:
        books = self._authorised()
        return next((i for i in books.invoices.values() if i.number == number), None)

    async def invoice_lines(self, invoice_id: str) -> InvoiceDetail:
        """One line per invoice: the dues it bills, quantity 1 at its total, no tax."""
        invoice = self._authorised().invoices.get(invoice_id)
        if invoice is None:
            raise NotFound(SYSTEM, f"Test Books has no invoice {invoice_id}", status=404)
        zero = Money.zero(invoice.total.currency)
        line = InvoiceLine(
            1, "Membership dues", "DUES", Decimal(1), invoice.total, zero, zero, invoice.total
        )
        return InvoiceDetail(invoice.id, invoice.number, invoice.total, zero, (line,))

    async def payments(
        self, *, changed_since: dt.datetime | None = None
    ) -> AsyncIterator[LedgerPayment]:
        for payment in list(self._authorised().payments.values()):
            if changed_since is None or (payment.updated_at or _now()) >= changed_since:
                yield payment

    async def credit_notes(
        self, *, changed_since: dt.datetime | None = None
    ) -> AsyncIterator[LedgerCreditNote]:
        self._authorised()
        for note in ():
            yield note

    # -- postings ------------------------------------------------------------------------------

    async def post_receipt(self, receipt: ReceiptRequest) -> PostedReceipt:
        return self._post(
            "receipt",
            receipt.idempotency_key,
            receipt.customer_id,
            receipt.date,
            receipt.amount,
            receipt.applications,
            receipt.reference,
            -1,
        )

    async def post_refund(self, refund: RefundRequest) -> PostedReceipt:
        return self._post(
            "refund",
            refund.idempotency_key,
            refund.customer_id,
            refund.date,
            refund.amount,
            refund.applications,
            refund.reference,
            +1,
        )

    async def reverse_posted_receipt(self, reversal: ReceiptReversal) -> PostedReceipt:
        return await self.post_refund(reversal.undoing)

    async def find_receipt(self, idempotency_key: str) -> PostedReceipt | None:
        found = self._authorised().postings.get(idempotency_key)
        return replace(found, replayed=True) if found else None

    def _post(self, kind, key, customer_id, on, amount, applications, reference, sign):  # type: ignore[no-untyped-def]
        books = self._authorised()
        if key in books.postings:
            return replace(books.postings[key], replayed=True)
        if books.lockdown is not None and on <= books.lockdown:
            raise Rejected(
                SYSTEM,
                f"the period up to {books.lockdown} is locked; post after it",
                422,
                field="date",
            )
        if customer_id not in books.customers:
            raise NotFound(SYSTEM, f"Test Books has no customer {customer_id}", status=404)
        for application in applications:
            invoice = books.invoices.get(application.invoice_id)
            if invoice is None:
                raise Rejected(
                    SYSTEM, f"no invoice {application.invoice_id}", 422, field="invoice_id"
                )
            if sign < 0 and application.amount > invoice.outstanding:
                raise Rejected(SYSTEM, f"{invoice.number} has less open", 422, field="amount")
        for application in applications:
            invoice = books.invoices[application.invoice_id]
            books.invoices[invoice.id] = replace(
                invoice,
                outstanding=invoice.outstanding + application.amount * sign,
                updated_at=_now(),
            )
        applied = sum((a.amount for a in applications), Money.zero(amount.currency))
        payment_id = f"P{next(books.ids)}"
        books.payments[payment_id] = LedgerPayment(
            id=payment_id,
            kind=kind,
            customer_id=customer_id,
            on=on,
            amount=amount,
            unallocated=amount - applied,
            reference=reference,
            applied=tuple((a.invoice_id, a.amount) for a in applications),
            updated_at=_now(),
        )
        posted = PostedReceipt(SYSTEM, payment_id, key, amount, applied)
        books.postings[key] = posted
        return posted

    async def currency_digits(self) -> dict[str, int]:
        self._authorised()
        return {"USD": 2, "EUR": 2, "JPY": 0}

    async def lockdown_date(self) -> dt.date | None:
        return self._authorised().lockdown
