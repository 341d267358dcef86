"""An in-memory ledger implementing the ``Ledger`` Protocol's customer half, for linking
tests and the bulk-link benchmark: idempotent creates (a repeated key returns the first
customer, like SBC's ``idempotency_id``), lookups by reference, and hooks to fail or
"crash" a create after the customer was made."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import date, datetime

from ledgerlink.connectors.base import CheckResult
from ledgerlink.connectors.errors import NotFound, Rejected
from ledgerlink.domain.accounts import (
    CustomerAccount,
    CustomerDraft,
    Invoice,
    LedgerCreditNote,
    LedgerPayment,
    PostedReceipt,
    ReceiptRequest,
    RefundRequest,
)
from ledgerlink.domain.invoice_lines import InvoiceDetail


class Crash(BaseException):
    """Stands for the process dying (kill -9): not an Exception, so nothing handles it."""


class FakeLedger:
    system = "sbc"

    def __init__(self, system: str = "sbc") -> None:
        self.system = system
        self.by_id: dict[str, CustomerAccount] = {}
        self.by_key: dict[str, str] = {}
        self.create_calls = 0
        self._ids = itertools.count(1)
        #: Called after a customer is stored, before the answer is returned.
        self.after_create: Callable[[CustomerAccount], None] | None = None
        self.reject_names: set[str] = set()

    def add(self, number: str, name: str, email: str = "") -> CustomerAccount:
        customer = CustomerAccount(
            system=self.system, id=f"c{next(self._ids)}", number=number, name=name, email=email
        )
        self.by_id[customer.id] = customer
        return customer

    async def check(self) -> list[CheckResult]:
        return [CheckResult("reachable", True, "in memory")]

    async def aclose(self) -> None:
        return None

    async def customers(
        self, *, changed_since: datetime | None = None
    ) -> AsyncIterator[CustomerAccount]:
        for customer in list(self.by_id.values()):
            yield customer

    async def get_customer(self, customer_id: str) -> CustomerAccount:
        try:
            return self.by_id[customer_id]
        except KeyError:
            raise NotFound(self.system, f"customer {customer_id} not found", 404) from None

    async def find_customer(self, number: str) -> CustomerAccount | None:
        return next((c for c in self.by_id.values() if c.number == number), None)

    async def create_customer(self, draft: CustomerDraft, idempotency_key: str) -> CustomerAccount:
        self.create_calls += 1
        if draft.name in self.reject_names:
            raise Rejected(self.system, "name can't be blank", 422, field="name")
        if idempotency_key in self.by_key:
            return self.by_id[self.by_key[idempotency_key]]
        customer = self.add(draft.number, draft.name, draft.email)
        customer = replace(customer, phone=draft.phone, address=draft.address)
        self.by_id[customer.id] = customer
        self.by_key[idempotency_key] = customer.id
        if self.after_create is not None:
            self.after_create(customer)
        return customer

    async def update_customer(self, customer_id: str, draft: CustomerDraft) -> CustomerAccount:
        raise NotImplementedError

    def invoices(
        self,
        *,
        customer_id: str | None = None,
        open_only: bool = True,
        changed_since: datetime | None = None,
    ) -> AsyncIterator[Invoice]:
        raise NotImplementedError

    async def find_invoice(self, number: str) -> Invoice | None:
        return None

    async def invoice_lines(self, invoice_id: str) -> InvoiceDetail:
        """No invoices: linking tests never read lines."""
        raise NotFound(self.system, f"invoice {invoice_id} not found", 404)

    async def payments(
        self, *, changed_since: datetime | None = None
    ) -> AsyncIterator[LedgerPayment]:
        """No history: linking tests never read it."""
        return
        yield

    async def credit_notes(
        self, *, changed_since: datetime | None = None
    ) -> AsyncIterator[LedgerCreditNote]:
        return
        yield

    async def post_receipt(self, receipt: ReceiptRequest) -> PostedReceipt:
        raise NotImplementedError

    async def post_refund(self, refund: RefundRequest) -> PostedReceipt:
        raise NotImplementedError

    async def find_receipt(self, idempotency_key: str) -> PostedReceipt | None:
        return None

    async def currency_digits(self) -> dict[str, int]:
        return {"USD": 2}

    async def lockdown_date(self) -> date | None:
        return None
