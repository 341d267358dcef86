"""The ports every connector implements; sync, payments and reconciliation use only these.

Two shapes of external system: a **ledger** (SBC, Sage 500) holds customers, invoices
and receipts; a **card gateway** (PayTrace) holds card transactions, stored customer
profiles and settlement batches. Both can be asked to check themselves, which is what
``ledgerlink connection test`` and the portal's *Test connection* show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from ledgerlink.connectors.errors import RateLimited, Unavailable, UpstreamError
from ledgerlink.domain.accounts import (
    Batch,
    CardCustomer,
    CardTransaction,
    CustomerAccount,
    CustomerDraft,
    Invoice,
    LedgerCreditNote,
    LedgerPayment,
    PostedReceipt,
    ReceiptFields,
    ReceiptRequest,
    ReceiptReversal,
    RefundRequest,
)
from ledgerlink.domain.checks import CheckTransaction
from ledgerlink.domain.invoice_lines import InvoiceDetail
from ledgerlink.domain.level_three import LevelThreeData
from ledgerlink.domain.money import Money


@dataclass(frozen=True)
class CheckResult:
    """One line of a connection test: what was checked, whether it passed, and why."""

    name: str  # "reachable", "credentials", "permissions", "business"...
    ok: bool
    detail: str
    #: The system could not be reached or did not answer in time: the check learned
    #: nothing about the settings, so saving keeps the connection as it was (saved, not
    #: verified) instead of deactivating what worked before.
    unreachable: bool = False

    @classmethod
    def from_error(cls, name: str, error: UpstreamError) -> CheckResult:
        """A failed check from the upstream's error: an outage, a timeout or a rate limit
        says nothing about ``name`` (credentials, permissions...), so it is reported as
        the system being unreachable, with the error's own words."""
        if isinstance(error, Unavailable | RateLimited):
            return cls("reachable", False, error.message, unreachable=True)
        return cls(name, False, error.message)


@runtime_checkable
class LedgerHistory(Protocol):
    """What a ledger has recorded for its customers beyond invoices: receipts, refunds and
    credit notes. Every ledger implements it (``Ledger`` includes it), so a ledger kind
    without history fails type checking and the contract test instead of a member's
    history or a reconciliation silently missing rows."""

    def payments(self, *, changed_since: datetime | None = None) -> AsyncIterator[LedgerPayment]:
        """Customer receipts and refunds; with ``changed_since``, those created or changed
        at or after it, and those deleted since (``deleted=True``) where the ledger can tell."""
        ...

    def credit_notes(
        self, *, changed_since: datetime | None = None
    ) -> AsyncIterator[LedgerCreditNote]:
        """Credit notes (voided ones ``deleted=True``); ``changed_since`` narrows where the
        ledger keeps a change date."""
        ...


@runtime_checkable
class InvoiceLines(Protocol):
    """An invoice's lines (description, item code, quantity, unit price, discount, tax,
    line amount), which card payments describe to the gateway as Level 3 data. Every
    ledger implements it (``Ledger`` includes it); the contract suite checks it."""

    async def invoice_lines(self, invoice_id: str) -> InvoiceDetail:
        """The lines of the invoice with this id (``Invoice.id``), as the ledger keeps
        them, even if they do not add up; ``NotFound`` when there is no such invoice."""
        ...


@dataclass(frozen=True)
class NewInvoices:
    """Open invoices a ledger created after a mark, and the mark to read from next time
    (the ledger's own: SBC ``created_at``, Sage 500 ``InvcKey``; never our clock)."""

    invoices: tuple[Invoice, ...]
    mark: str
    #: ids of the invoices created exactly at ``mark`` when it is a first read's mark: a
    #: mark of whole seconds cannot tell them from one created later in the same second,
    #: so the caller keeps them and drops them from later reads
    at_mark: tuple[str, ...] = ()


@runtime_checkable
class InvoiceFeed(Protocol):
    """New invoices as the ledger raises them, for payment requests (an e-mailed pay link
    or autopay): read by a mark on the ledger's own creation order. Both built-in ledgers
    implement it; the contract suite checks it."""

    async def invoices_created_after(
        self, mark: str | None, *, floor: str | None = None
    ) -> NewInvoices:
        """Open invoices created after ``mark`` (a mark this method returned), read with
        an overlap so an invoice saved late is not skipped (callers drop repeats by invoice
        id), and the largest mark seen. The overlap never reaches back before ``floor``
        (the mark of the first read): invoices created before it are not new. ``mark=None``:
        no invoices, only the current mark (and ``at_mark``), so a first read starts now
        instead of asking for every open invoice."""
        ...


@runtime_checkable
class Ledger(LedgerHistory, InvoiceLines, Protocol):
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

    async def add_level_three(self, transaction_id: str, data: LevelThreeData) -> None:
        """Attach Level 3 data to an approved, unsettled sale (the brand's shape);
        ``Rejected`` naming the field when the gateway refuses it."""
        ...


@runtime_checkable
class AchGateway(Protocol):
    """A card gateway that also takes ACH payments (PayTrace's checks API). Check ids are
    PayTrace's own (digits, no prefix); see :mod:`ledgerlink.domain.checks`."""

    async def checks(self, start: date, end: date) -> list[CheckTransaction]:
        """Checks created or returned between the two dates (inclusive)."""
        ...

    async def check_by_id(self, check_id: str) -> CheckTransaction: ...

    async def check_sale_by_customer(
        self, customer_id: str, amount: Money, *, invoice_number: str = ""
    ) -> CheckTransaction: ...

    async def check_void(self, check_id: str) -> CheckTransaction: ...

    async def check_refund(
        self, check_id: str, amount: Money | None = None
    ) -> CheckTransaction: ...

    async def bank_account(self, customer_id: str) -> str | None:
        """The masked bank account on a customer profile, or None when it holds none."""
        ...


@runtime_checkable
class ReceiptReversals(Protocol):
    """What card payments need of a ledger beyond :class:`Ledger`: taking a receipt back
    (a void or a chargeback), and knowing what the ledger's refunds can do."""

    #: True when a refund's applications re-open invoices (Sage 500); False when a refund
    #: only pays money on account back (SBC), so a refund plan re-opens nothing there.
    refunds_reopen_invoices: bool

    async def reverse_posted_receipt(self, reversal: ReceiptReversal) -> PostedReceipt:
        """Undo the receipt, re-opening what it paid. Safe to repeat (a retry after a lost
        reply): the answer is the same reversal, not a second one."""
        ...


@runtime_checkable
class PaymentLedger(Ledger, ReceiptReversals, Protocol):
    """A ledger card payments post to."""


@dataclass(frozen=True)
class CardPostingRules:
    """How card payments post to one kind of ledger, for the payments pipeline: how its
    payment spec names the customer and how the spec's output reads, and whether
    ledgerlink names PayTrace profiles after the ledger's customers. Declared by the
    connector package (its registry descriptor), so payments code knows no field names."""

    #: the spec's field naming the ledger customer (the pipeline chose the customer, so
    #: that field's errors are moot)
    customer_field: str
    #: the link-table column the spec reads the ledger customer's id from
    customer_link: str
    #: the spec's output as the date, GL account and reference to post with
    read_receipt: Callable[[Mapping[str, Any]], ReceiptFields]
    #: the ledger customer number a PayTrace profile id stands for, where ledgerlink names
    #: profiles after the ledger's customers (None: not named so, or not this one's form)
    customer_number_of_profile: Callable[[str], str | None] | None = None
    #: and the other way: the profile id ledgerlink gives a ledger customer number
    profile_of_customer_number: Callable[[str], str | None] | None = None
    #: the ledger payment method an ACH receipt takes when the connection maps none
    ach_default_method: str = ""
    #: True where a receipt's "account" is the GL cash account it posts to (Sage 500), so
    #: a mapped ACH account becomes the plan's GL account; else it is a bank account id
    account_is_gl_account: bool = False
