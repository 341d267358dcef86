"""An in-memory ledger for card payments, and the facts planning reads from it.

:class:`MemoryLedger` keeps customers, invoices (with what is still open on them), and
the receipts and refunds posted to it, once per idempotency key. It behaves like either
ledger kind where they differ: ``refunds_reopen_invoices`` (Sage 500: a refund applied to
an invoice re-opens it; SBC: a refund only pays money back), and reversal (Sage 500 posts
a refund or chargeback entry; SBC deletes the receipt).

:class:`MemoryPayments` is what the payments pipeline would read besides the ledger: the
postings ledgerlink recorded, the inbox events' statuses, the payers' links, and the
ledger's payment spec (the shipped one, compiled from the package). ``record`` stands for
``queue.finish``: it keeps an executed plan's outcome, so tests can run sale → refund →
chargeback → won dispute in order.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field, replace

from ledgerlink.connectors.base import CardPostingRules, CheckResult
from ledgerlink.connectors.errors import NotFound, Rejected
from ledgerlink.connectors.sage500.card_posting import CARD_POSTING as SAGE500_POSTING
from ledgerlink.connectors.sbc.card_posting import CARD_POSTING as SBC_POSTING
from ledgerlink.domain.accounts import (
    Application,
    CustomerAccount,
    Invoice,
    InvoiceStatus,
    PostedReceipt,
    ReceiptRequest,
    ReceiptReversal,
    RefundRequest,
)
from ledgerlink.domain.money import Money
from ledgerlink.mapping.engine import compile_spec, load_table
from ledgerlink.mapping.loader import load_document, packaged_file, packaged_text
from ledgerlink.payments.planning import (
    LedgerTarget,
    ReceiptMapper,
    RecordedReceipt,
    SaleProgress,
)
from ledgerlink.payments.plans import Plan, ReceiptPlan, RefundPlan, ReversalPlan
from ledgerlink.payments.queue import Outcome

#: What each kind's payment spec is called, and how card payments post to it.
KINDS: dict[str, tuple[str, str, CardPostingRules, bool]] = {
    # kind: (label, spec, rules, refunds re-open invoices)
    "sage500": ("Sage 500", "paytrace_transaction_to_sage500_cash_receipt", SAGE500_POSTING, True),
    "sbc": (
        "Sage Business Cloud",
        "paytrace_transaction_to_sbc_contact_payment",
        SBC_POSTING,
        False,
    ),
}


def shipped_mapper(kind: str) -> ReceiptMapper:
    """The payment spec ledgerlink ships for ``kind``, compiled (version ``shipped``)."""
    _label, name, rules, _reopen = KINDS[kind]
    shared = {
        "payment_status": load_table(
            load_document(packaged_text("payment_status") or "", "payment_status.yaml")
        )
    }
    document = load_document(packaged_text(name) or "", packaged_file(name))
    return ReceiptMapper(compile_spec(document, shared), f"{name}@shipped", rules)


@dataclass
class Entry:
    """A receipt or refund in the ledger."""

    posted: PostedReceipt
    kind: str  # "receipt" | "refund" | "chargeback"
    customer_id: str
    applications: tuple[Application, ...]
    deleted: bool = False


class MemoryLedger:
    """The ledger half: what the ledger itself holds and does."""

    def __init__(self, kind: str = "sage500", currency: str = "USD") -> None:
        self.system = kind
        self.currency = currency
        self.refunds_reopen_invoices = KINDS[kind][3]
        self.customers: dict[str, CustomerAccount] = {}
        self.invoices: dict[str, Invoice] = {}
        self.entries: dict[str, Entry] = {}  # by ledger id
        self.by_key: dict[str, str] = {}
        self.lockdown: dt.date | None = None
        self._ids = itertools.count(1)

    # -- arranging -----------------------------------------------------------------------

    def add_customer(self, number: str, name: str = "") -> CustomerAccount:
        customer = CustomerAccount(
            self.system, f"cust-{number}", number, name or number, currency=self.currency
        )
        self.customers[customer.id] = customer
        return customer

    def add_invoice(
        self, number: str, customer: CustomerAccount, total: str, open_: str | None = None
    ) -> Invoice:
        currency = customer.currency
        invoice = Invoice(
            system=self.system,
            id=f"inv-{number}",
            number=number,
            customer_id=customer.id,
            date=dt.date(2026, 1, 5),
            due_date=None,
            total=Money.parse(total, currency),
            outstanding=Money.parse(open_ if open_ is not None else total, currency),
            status=InvoiceStatus.UNPAID,
        )
        self.invoices[invoice.id] = invoice
        return invoice

    def outstanding(self, number: str) -> Money:
        return next(i.outstanding for i in self.invoices.values() if i.number == number)

    # -- what planning reads ---------------------------------------------------------------

    async def find_customer(self, number: str) -> CustomerAccount | None:
        return next((c for c in self.customers.values() if c.number == number), None)

    async def find_invoice(self, number: str) -> Invoice | None:
        return next((i for i in self.invoices.values() if i.number == number), None)

    async def lockdown_date(self) -> dt.date | None:
        return self.lockdown

    # -- what execution does -----------------------------------------------------------------

    async def check(self) -> list[CheckResult]:
        return [CheckResult("reachable", True, "in memory")]

    async def aclose(self) -> None:
        return None

    async def post_receipt(self, receipt: ReceiptRequest) -> PostedReceipt:
        return self._post(
            "receipt",
            receipt.idempotency_key,
            receipt.customer_id,
            receipt.amount,
            receipt.applications,
            -1,
        )

    async def post_refund(self, refund: RefundRequest) -> PostedReceipt:
        kind = "chargeback" if refund.chargeback else "refund"
        reopens = refund.applications if self.refunds_reopen_invoices else ()
        return self._post(
            kind, refund.idempotency_key, refund.customer_id, refund.amount, reopens, +1
        )

    async def reverse_posted_receipt(self, reversal: ReceiptReversal) -> PostedReceipt:
        if self.refunds_reopen_invoices:  # Sage 500: an entry that re-opens the invoice
            return await self.post_refund(reversal.undoing)
        entry = self.entries.get(reversal.receipt_id)  # SBC: the receipt is deleted
        if entry is None:
            raise NotFound(self.system, f"no receipt {reversal.receipt_id}", 404)
        if not entry.deleted:
            entry.deleted = True
            for application in entry.applications:
                self._change_open(application.invoice_id, application.amount)
        return replace(entry.posted, replayed=False)

    async def find_receipt(self, idempotency_key: str) -> PostedReceipt | None:
        ledger_id = self.by_key.get(idempotency_key)
        return self.entries[ledger_id].posted if ledger_id else None

    def _post(
        self,
        kind: str,
        key: str,
        customer_id: str,
        amount: Money,
        applications: tuple[Application, ...],
        sign: int,
    ) -> PostedReceipt:
        if key in self.by_key:
            return replace(self.entries[self.by_key[key]].posted, replayed=True)
        if customer_id not in self.customers:
            raise Rejected(self.system, f"no customer {customer_id}", 422, field="customer_id")
        for application in applications:
            invoice = self.invoices[application.invoice_id]
            if sign < 0 and application.amount > invoice.outstanding:
                raise Rejected(
                    self.system, f"{invoice.number} has less open", 422, field="applications"
                )
        for application in applications:
            self._change_open(application.invoice_id, application.amount * sign)
        applied = sum((a.amount for a in applications), Money.zero(amount.currency))
        ledger_id = f"pmt-{next(self._ids)}"
        posted = PostedReceipt(self.system, ledger_id, key, amount, applied)
        self.entries[ledger_id] = Entry(posted, kind, customer_id, applications)
        self.by_key[key] = ledger_id
        return posted

    def _change_open(self, invoice_id: str, by: Money) -> None:
        invoice = self.invoices[invoice_id]
        self.invoices[invoice_id] = replace(invoice, outstanding=invoice.outstanding + by)


@dataclass
class MemoryPayments:
    """The facts planning reads (``PlanningFacts``), over a :class:`MemoryLedger` and
    what ledgerlink would have recorded."""

    ledger: MemoryLedger
    connection_id: int = 7
    #: PayTrace customer id → ledger customer id (the member links)
    payers: dict[str, str] = field(default_factory=dict)
    #: inbox event statuses by dedup key (``<transaction>:<kind>``)
    events: dict[str, str] = field(default_factory=dict)
    #: receipts ledgerlink recorded, by sale, newest last
    receipts: dict[str, list[RecordedReceipt]] = field(default_factory=dict)
    #: applied amounts of refunds recorded, by the sale refunded
    refunds: dict[str, list[int]] = field(default_factory=dict)
    _postings: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    def __post_init__(self) -> None:
        self.mapper = shipped_mapper(self.ledger.system)

    # -- PlanningFacts -----------------------------------------------------------------------

    async def target(self) -> LedgerTarget:
        label = KINDS[self.ledger.system][0]
        return LedgerTarget(
            self.connection_id, self.ledger.system, label, self.ledger.refunds_reopen_invoices
        )

    async def find_customer(self, number: str) -> CustomerAccount | None:
        return await self.ledger.find_customer(number)

    async def find_invoice(self, number: str) -> Invoice | None:
        return await self.ledger.find_invoice(number)

    async def lockdown_date(self) -> dt.date | None:
        return await self.ledger.lockdown_date()

    async def payer(self, paytrace_customer_id: str) -> tuple[str | None, str]:
        customer_id = self.payers.get(paytrace_customer_id)
        if customer_id is None:
            return None, ""
        return customer_id, self.ledger.customers[customer_id].number

    async def receipt_mapper(self) -> ReceiptMapper:
        return self.mapper

    async def sale_progress(self, sale_id: str) -> SaleProgress:
        recorded = self.receipts.get(sale_id)
        if recorded:
            return SaleProgress(recorded[-1])
        statuses = (self.events.get(f"{sale_id}:{kind}") for kind in ("sale", "capture"))
        return SaleProgress(None, tuple(s for s in statuses if s is not None))

    async def event_status(self, dedup_key: str) -> str | None:
        return self.events.get(dedup_key)

    async def refunded_minor(self, sale_id: str) -> int:
        return sum(self.refunds.get(sale_id, []))

    # -- what queue.finish would record ------------------------------------------------------

    def record(self, plan: Plan, outcome: Outcome) -> None:
        [posting] = outcome.postings
        self.events[plan.key.removeprefix("paytrace:")] = "posted"
        if isinstance(plan, ReceiptPlan):
            receipt = RecordedReceipt(
                posting_id=next(self._postings),
                customer_id=plan.customer_id,
                invoice_id=plan.invoice_id,
                invoice_number=plan.invoice_number,
                amount_minor=plan.amount.minor,
                applied_minor=plan.applied.minor,
                ledger_id=posting.ledger_id,
                reversed=False,
            )
            self.receipts.setdefault(plan.transaction_id, []).append(receipt)
        elif isinstance(plan, RefundPlan):
            self.refunds.setdefault(plan.original_transaction_id, []).append(plan.applied.minor)
        elif isinstance(plan, ReversalPlan):
            self.receipts[plan.transaction_id] = [
                replace(r, reversed=True) if r.posting_id == plan.receipt_posting_id else r
                for r in self.receipts[plan.transaction_id]
            ]
