"""The ports every connector implements; sync, payments and reconciliation use only these.

Two shapes of external system: a **ledger** (SBC, Sage 500) holds customers, invoices
and receipts; a **card gateway** (PayTrace) holds card transactions, stored customer
profiles and settlement batches. Both can be asked to check themselves, which is what
``ledgerlink connection test`` and the portal's *Test connection* show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from ledgerlink.domain.accounts import (
    Batch,
    CardCustomer,
    CardTransaction,
    CustomerAccount,
    CustomerDraft,
    Invoice,
    PostedReceipt,
    ReceiptRequest,
    RefundRequest,
)
from ledgerlink.domain.money import Money


@dataclass(frozen=True)
class CheckResult:
    """One line of a connection test: what was checked, whether it passed, and why."""

    name: str  # "reachable", "credentials", "permissions", "business"...
    ok: bool
    detail: str


@runtime_checkable
class Ledger(Protocol):
    system: str

    async def check(self) -> list[CheckResult]: ...

    async def aclose(self) -> None:
        """Release connections; adapters are also async context managers."""
        ...

    def customers(self, *, changed_since: datetime | None = None) -> AsyncIterator[CustomerAccount]:
        """Every customer, or those created/changed at or after ``changed_since``."""
        ...

    async def get_customer(self, customer_id: str) -> CustomerAccount: ...

    async def find_customer(self, number: str) -> CustomerAccount | None:
        """By the number users see (SBC reference, Sage 500 CustID)."""
        ...

    async def create_customer(
        self, draft: CustomerDraft, idempotency_key: str
    ) -> CustomerAccount: ...

    async def update_customer(self, customer_id: str, draft: CustomerDraft) -> CustomerAccount: ...

    def invoices(
        self,
        *,
        customer_id: str | None = None,
        open_only: bool = True,
        changed_since: datetime | None = None,
    ) -> AsyncIterator[Invoice]: ...

    async def find_invoice(self, number: str) -> Invoice | None:
        """The invoice users know by ``number`` (SBC invoice_number, Sage 500 TranID)."""
        ...

    async def post_receipt(self, receipt: ReceiptRequest) -> PostedReceipt:
        """Post once: a repeat with the same idempotency key returns the first posting
        with ``replayed=True`` instead of posting again."""
        ...

    async def post_refund(self, refund: RefundRequest) -> PostedReceipt: ...

    async def find_receipt(self, idempotency_key: str) -> PostedReceipt | None:
        """The posting made with this key, if any (to settle an unknown outcome)."""
        ...

    async def currency_digits(self) -> dict[str, int]:
        """Decimal places per currency as the ledger keeps them."""
        ...

    async def lockdown_date(self) -> date | None:
        """Nothing may be posted on or before this date (closed period)."""
        ...


@runtime_checkable
class CardGateway(Protocol):
    system: str

    async def check(self) -> list[CheckResult]: ...

    async def aclose(self) -> None: ...

    async def transactions(self, start: date, end: date) -> list[CardTransaction]:
        """Transactions created between the two dates (inclusive)."""
        ...

    async def transaction(self, transaction_id: str) -> CardTransaction: ...

    async def sale_by_customer(
        self, customer_id: str, amount: Money, *, invoice_number: str = ""
    ) -> CardTransaction: ...

    async def refund(self, transaction_id: str, amount: Money | None = None) -> CardTransaction:
        """Refund a settled transaction (all of it when ``amount`` is None)."""
        ...

    async def void(self, transaction_id: str) -> CardTransaction:
        """Void an unsettled transaction."""
        ...

    async def customer(self, customer_id: str) -> CardCustomer: ...

    async def customers(self) -> list[CardCustomer]:
        """Every stored customer profile (never card data beyond the masked number)."""
        ...

    async def update_customer(self, customer: CardCustomer) -> CardCustomer:
        """Change a profile's contact details (not its card)."""
        ...

    async def batches(self, start: date, end: date) -> list[Batch]: ...

    async def batch_transactions(self, batch_number: str) -> list[CardTransaction]: ...
