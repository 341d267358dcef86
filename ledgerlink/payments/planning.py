"""Deciding what to post for a verified card payment: the plan.

Pure decisions: no database, no HTTP. Everything planning needs to know — the ledger's
customers, invoices and closed period, and what ledgerlink recorded of earlier events and
postings — it asks of a small read-only port, :class:`PlanningFacts`.
:mod:`ledgerlink.payments.ledger_facts` implements it over the ledger adapter and the
store, the unit tests over memory (``tests/support/memory_ledger.py``). A payment that
cannot be planned raises a :class:`~ledgerlink.payments.problems.PaymentProblem` (the
exceptions queue), :class:`~ledgerlink.payments.problems.Settled` (nothing to post) or
:class:`~ledgerlink.payments.problems.Deferred` (wait for another event first).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from ledgerlink.connectors.base import CardPostingRules
from ledgerlink.domain.accounts import CustomerAccount, Invoice
from ledgerlink.domain.money import Money
from ledgerlink.mapping import CompiledMapping, MappingContext
from ledgerlink.mapping.transforms.customer_ids import LinkTable
from ledgerlink.payments.ach_returns import unposted_return_problem
from ledgerlink.payments.facts import CardPayment
from ledgerlink.payments.plans import (
    DisputeWonPlan,
    Plan,
    ReceiptPlan,
    RefundPlan,
    ReversalPlan,
)
from ledgerlink.payments.problems import Deferred, PaymentProblem, Settled

SALE_KINDS = ("sale", "capture")
#: Event statuses of work still to do (``queue.ACTIVE``).
ACTIVE = ("received", "processing")


@dataclass(frozen=True)
class LedgerTarget:
    """The ledger connection card payments post to."""

    connection_id: int
    #: the connection's kind, recorded with each posting
    kind: str
    #: what users call the ledger ("Sage 500")
    name: str
    #: the ledger's refunds re-open invoices (else a refund only pays money back)
    refunds_reopen_invoices: bool


@dataclass(frozen=True)
class RecordedReceipt:
    """The receipt ledgerlink posted for a sale, as it recorded it."""

    posting_id: int
    customer_id: str
    invoice_id: str
    invoice_number: str
    amount_minor: int
    applied_minor: int
    ledger_id: str
    reversed: bool


@dataclass(frozen=True)
class SaleProgress:
    """What became of a sale: its newest receipt (a won dispute posts it again), and the
    statuses of its inbox events (as a sale and as a capture; none if the inbox never
    saw it)."""

    receipt: RecordedReceipt | None
    statuses: tuple[str, ...] = ()


@dataclass(frozen=True)
class MappedFields:
    """What the payment spec says to post with, and which version of it said so."""

    on: dt.date
    gl_account: str
    reference: str
    mapping_version: str


class PlanningFacts(Protocol):
    """What planning may read. Read-only: nothing here writes to the ledger or the store."""

    async def target(self) -> LedgerTarget:
        """The ledger this payment posts to (a configuration problem when none is set)."""
        ...

    async def find_customer(self, number: str) -> CustomerAccount | None: ...

    async def find_invoice(self, number: str) -> Invoice | None: ...

    async def lockdown_date(self) -> dt.date | None:
        """Nothing may be posted on or before this date (the ledger's closed period)."""
        ...

    async def payer(self, paytrace_customer_id: str) -> tuple[str | None, str]:
        """(ledger customer id, its number) a PayTrace customer stands for, or (None, "")."""
        ...

    async def receipt_mapper(self) -> ReceiptMapper:
        """The target ledger's active payment spec."""
        ...

    async def sale_progress(self, sale_id: str) -> SaleProgress:
        """What became of a PayTrace sale so far, read at once."""
        ...

    async def event_status(self, dedup_key: str) -> str | None:
        """The status of the inbox event ``<transaction>:<kind>``, if there is one."""
        ...

    async def refunded_minor(self, sale_id: str) -> int:
        """How much of a sale's applied amount refunds have re-opened already."""
        ...


class SaleNotInInbox(Exception):
    """A refund, void or chargeback names a sale the inbox never got: the processor reads
    it from PayTrace and puts it in the inbox, to be posted first."""

    def __init__(self, sale_id: str) -> None:
        super().__init__(sale_id)
        self.sale_id = sale_id


@dataclass(frozen=True)
class Override:
    """What a user chose when they sent an exception back (``payload["override"]``)."""

    invoice_number: str = ""
    on_account: bool = False
    customer_number: str = ""
    accept_over: bool = False

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Override:
        chosen = payload.get("override") or {}
        return cls(
            invoice_number=str(chosen.get("invoice_number") or ""),
            on_account=bool(chosen.get("on_account")),
            customer_number=str(chosen.get("customer_number") or ""),
            accept_over=bool(chosen.get("accept_over")),
        )


@dataclass(frozen=True)
class PlanRequest:
    """A verified payment and what else about its event planning needs."""

    payment: CardPayment
    override: Override = Override()
    #: a void for this sale is in the inbox too
    void_received: bool = False
    #: the PayTrace connection's overpayment policy: "on_account" or "exception"
    overpayment: str = "on_account"


@dataclass(frozen=True)
class ReceiptMapper:
    """A ledger's payment spec applied to a payment (pure: the spec is already loaded)."""

    compiled: CompiledMapping
    version: str
    rules: CardPostingRules

    def map(self, payment: CardPayment, customer_id: str, number: str) -> MappedFields:
        source = payment.mapping_source()
        payer = payment.paytrace_customer_id or number or "C00000"
        source["customer_id"] = payer
        # Planning chose the customer already: the spec's customer field is given it
        # through a link, and its errors (a payer with no link of its own) are moot.
        links = LinkTable([{"paytrace": payer, self.rules.customer_link: customer_id}])
        result = self.compiled.apply(source, None, MappingContext(links=links))
        errors = [e for e in result.errors if e.field != self.rules.customer_field]
        if errors:
            raise PaymentProblem(
                "mapping",
                f"The payment spec {self.version} could not map the payment: "
                + "; ".join(f"{e.field}: {e.message}" for e in errors),
                "Fix the spec under Mappings (preview it on this payment), then retry.",
            )
        read = self.rules.read_receipt(result.output)
        return MappedFields(
            on=dt.date.fromisoformat(read.date or payment.on.isoformat()),
            gl_account=read.gl_account,
            reference=read.reference or f"PayTrace {payment.transaction_id}",
            mapping_version=self.version,
        )


class Planner:
    """Decides the plan for one payment from the facts it is given."""

    def __init__(self, facts: PlanningFacts) -> None:
        self.facts = facts

    async def plan(self, request: PlanRequest) -> Plan:
        payment = request.payment
        kind = payment.kind
        if kind in SALE_KINDS:
            if payment.declined and payment.method == "ach":
                raise PaymentProblem(
                    "declined",
                    f"PayTrace did not process the ACH payment of "
                    f"{payment.amount.format_plain()} {payment.amount.currency}"
                    + (f" for invoice {payment.invoice_number}" if payment.invoice_number else "")
                    + (f": {payment.response}" if payment.response else ""),
                    "Nothing was collected or posted. Check the bank account with the payer, "
                    "or ask them to pay another way; ignore this exception once they have.",
                )
            if payment.declined:
                raise PaymentProblem(
                    "declined",
                    f"PayTrace declined the card payment of {payment.amount.format_plain()} "
                    f"{payment.amount.currency}"
                    + (f" for invoice {payment.invoice_number}" if payment.invoice_number else "")
                    + (f": {payment.response}" if payment.response else ""),
                    "Nothing was posted. Ask the customer to pay again or with another card; "
                    "ignore this exception once they have.",
                )
            if payment.voided or request.void_received:
                raise Settled("Voided at PayTrace before it was posted: nothing to post")
            return await self.receipt(request, payment, "sale")
        if kind == "authorization":
            raise Settled("An authorisation only: it is posted when it is captured")
        if kind == "dispute_won":
            return await self.dispute_won(request, payment)
        if kind == "refund":
            return await self.refund(payment)
        if kind in ("void", "chargeback", "return"):
            return await self.reversal(payment)
        raise Settled(f"Nothing is posted for a {kind}")

    # -- receipts -----------------------------------------------------------------------------

    async def receipt(
        self,
        request: PlanRequest,
        payment: CardPayment,
        key_kind: str,
        *,
        customer_id: str | None = None,
    ) -> ReceiptPlan:
        """A sale (or a won dispute's payment again) as a receipt for its invoice."""
        target = await self.facts.target()
        override = request.override
        invoice_number = override.invoice_number or payment.invoice_number
        payer_number = ""
        if customer_id is None and override.customer_number:
            account = await self.facts.find_customer(override.customer_number)
            if account is None:
                raise PaymentProblem(
                    "not_linked",
                    f"There is no customer {override.customer_number} in "
                    f"{target.name} to put the payment on account for",
                    "Check the customer number and choose Put on account again.",
                )
            customer_id, payer_number = account.id, account.number
        if payment.paytrace_customer_id and customer_id is None:
            customer_id, payer_number = await self.facts.payer(payment.paytrace_customer_id)
        amount = payment.amount
        apply = Money.zero(amount.currency)
        invoice_id = ""
        if invoice_number and not override.on_account:
            invoice = await self.facts.find_invoice(invoice_number)
            if invoice is None:
                raise PaymentProblem(
                    "invoice_not_found",
                    f"Invoice {invoice_number} is not in {target.name}",
                    "Check the invoice number on the payment: apply it to the right invoice, "
                    "or put it on the customer's account.",
                )
            if customer_id and invoice.customer_id != customer_id:
                raise PaymentProblem(
                    "customer_mismatch",
                    f"Invoice {invoice_number} belongs to another customer than the payer "
                    f"({payment.paytrace_customer_id}, {payer_number or 'linked customer'})",
                    "Check who paid: apply the payment to one of the payer's invoices, or fix "
                    "the member's link, then retry.",
                )
            if invoice.total.currency != amount.currency:
                raise PaymentProblem(
                    "currency_mismatch",
                    f"The payment is in {amount.currency} but invoice {invoice_number} is in "
                    f"{invoice.total.currency}",
                    "Post it by hand in the ledger at the day's rate, then ignore this "
                    "exception with a note.",
                )
            customer_id = invoice.customer_id
            invoice_id = invoice.id
            apply = amount.min(invoice.outstanding) if invoice.is_open else apply
            over = amount - apply
            if over.minor > 0 and request.overpayment == "exception" and not override.accept_over:
                if apply.is_zero:
                    raise PaymentProblem(
                        "invoice_closed",
                        f"Invoice {invoice_number} has nothing left to pay; the payment of "
                        f"{amount.format_plain()} would all be an overpayment",
                        "Apply it to another open invoice, put it on account, or refund it.",
                    )
                raise PaymentProblem(
                    "amount_mismatch",
                    f"The payment of {amount.format_plain()} is more than the "
                    f"{invoice.outstanding.format_plain()} still open on invoice "
                    f"{invoice_number}",
                    "Put the difference on account, apply the payment to another invoice, or "
                    "refund the difference.",
                )
        if not customer_id:
            raise PaymentProblem(
                "not_linked",
                "The payment names no invoice and its payer "
                + (
                    f"(PayTrace customer {payment.paytrace_customer_id}) "
                    if payment.paytrace_customer_id
                    else ""
                )
                + f"is not linked to a customer in {target.name}",
                "Link the member to their PayTrace profile and ledger account, or apply the "
                "payment to an invoice, then retry.",
            )
        await self._check_period(target, payment.on)
        mapped = (await self.facts.receipt_mapper()).map(payment, customer_id, payer_number)
        return ReceiptPlan(
            ledger_connection_id=target.connection_id,
            system=target.kind,
            key=f"paytrace:{payment.transaction_id}:{key_kind}",
            transaction_id=payment.transaction_id,
            customer_id=customer_id,
            invoice_id=invoice_id,
            invoice_number=invoice_number if invoice_id else "",
            amount=amount,
            applied=apply,
            on=mapped.on,
            gl_account=mapped.gl_account,
            reference=mapped.reference,
            mapping_version=mapped.mapping_version,
            payment_method=payment.method,
        )

    async def dispute_won(self, request: PlanRequest, payment: CardPayment) -> DisputeWonPlan:
        """The receipt the chargeback reversed, posted again for the same customer."""
        chargeback = await self.facts.event_status(f"{payment.transaction_id}:chargeback")
        if chargeback in ACTIVE:
            raise Deferred("Waiting for the chargeback to be reversed first", 1.0)
        receipt = (await self.facts.sale_progress(payment.transaction_id)).receipt
        if receipt is None:
            raise Settled(
                f"Dispute on transaction {payment.transaction_id} won, but no receipt had been "
                "posted for it: nothing to post again"
            )
        again = CardPayment(
            transaction_id=payment.transaction_id,
            kind="dispute_won",
            amount=Money(receipt.amount_minor, payment.amount.currency),
            invoice_number=receipt.invoice_number or payment.invoice_number,
            paytrace_customer_id=payment.paytrace_customer_id,
            on=payment.on,
            approval_code=payment.approval_code,
        )
        plan = await self.receipt(request, again, "dispute_won", customer_id=receipt.customer_id)
        return DisputeWonPlan(
            **{field.name: getattr(plan, field.name) for field in fields(plan)},
            resolves_dispute_of=payment.transaction_id,
        )

    # -- money going back ---------------------------------------------------------------------

    async def refund(self, payment: CardPayment) -> RefundPlan:
        """A refund: for its sale's customer, re-opening the sale's invoice by what the
        sale applied and earlier refunds have not re-opened (where the ledger can)."""
        target = await self.facts.target()
        original = payment.original_transaction_id
        customer_id, invoice_id, invoice_number, reopen = "", "", "", 0
        if original:
            receipt = await self._receipt_or_wait(original, "refund")
            customer_id = receipt.customer_id
            invoice_id, invoice_number = receipt.invoice_id, receipt.invoice_number
            refunded = await self.facts.refunded_minor(original)
            reopen = max(0, min(payment.amount.minor, receipt.applied_minor - refunded))
        else:
            if payment.paytrace_customer_id:
                customer_id = (await self.facts.payer(payment.paytrace_customer_id))[0] or ""
            if not customer_id:
                raise PaymentProblem(
                    "not_linked",
                    f"Refund {payment.transaction_id} is for no earlier sale and its PayTrace "
                    f"customer {payment.paytrace_customer_id or '(none)'} is not linked to a "
                    f"customer in {target.name}",
                    "Link the member to their PayTrace profile and ledger account, then retry.",
                )
        await self._check_period(target, payment.on)
        mapped = (await self.facts.receipt_mapper()).map(payment, customer_id, "")
        if not target.refunds_reopen_invoices:
            reopen = 0
        currency = payment.amount.currency
        return RefundPlan(
            ledger_connection_id=target.connection_id,
            system=target.kind,
            key=f"paytrace:{payment.transaction_id}:refund",
            transaction_id=payment.transaction_id,
            original_transaction_id=original,
            customer_id=customer_id,
            invoice_id=invoice_id if reopen else "",
            invoice_number=invoice_number,
            amount=payment.amount,
            applied=Money(reopen, currency),
            on=mapped.on,
            gl_account=mapped.gl_account,
            reference=mapped.reference,
            mapping_version=mapped.mapping_version,
            payment_method=payment.method,
        )

    async def reversal(self, payment: CardPayment) -> ReversalPlan:
        """A void or chargeback: the sale's receipt undone, re-opening what it applied
        less what refunds re-opened already."""
        target = await self.facts.target()
        chargeback = payment.kind == "chargeback"
        try:
            receipt = await self._receipt_or_wait(payment.transaction_id, payment.kind)
        except PaymentProblem as problem:
            if payment.kind != "return" or problem.code != "rejected":
                raise
            raise unposted_return_problem(
                payment,
                "It was never posted: the payment is in the exceptions queue. Ignore it there "
                "as well (the money did not arrive); do not retry it.",
            ) from None
        except Settled as nothing:
            if payment.kind == "return":
                raise unposted_return_problem(payment, nothing.why) from None
            if not chargeback:
                raise
            raise PaymentProblem(
                "chargeback",
                f"Chargeback of {payment.amount.format_plain()} on transaction "
                f"{payment.transaction_id}"
                + (f" (invoice {payment.invoice_number})" if payment.invoice_number else "")
                + f". {nothing.why}",
                "Answer the dispute in PayTrace; ignore this exception with the outcome.",
            ) from None
        if receipt.reversed:
            raise Settled(f"The receipt for sale {payment.transaction_id} is already reversed")
        await self._check_period(target, payment.on)
        mapped = (await self.facts.receipt_mapper()).map(payment, receipt.customer_id, "")
        refunded = await self.facts.refunded_minor(payment.transaction_id)
        currency = payment.amount.currency
        return ReversalPlan(
            ledger_connection_id=target.connection_id,
            system=target.kind,
            key=f"paytrace:{payment.transaction_id}:{payment.kind}",
            transaction_id=payment.transaction_id,
            customer_id=receipt.customer_id,
            invoice_id=receipt.invoice_id,
            invoice_number=receipt.invoice_number,
            amount=Money(receipt.amount_minor, currency),
            applied=Money(max(receipt.applied_minor - refunded, 0), currency),
            on=mapped.on,
            gl_account=mapped.gl_account,
            reference=mapped.reference,
            mapping_version=mapped.mapping_version,
            receipt_posting_id=receipt.posting_id,
            receipt_ledger_id=receipt.ledger_id,
            chargeback=chargeback,
            return_code=payment.return_code if payment.kind == "return" else "",
            return_reason=payment.return_reason if payment.kind == "return" else "",
            payment_method=payment.method,
        )

    async def _receipt_or_wait(self, sale_id: str, what: str) -> RecordedReceipt:
        """The receipt posted for sale ``sale_id``; waits (Deferred) while the sale is still
        to be processed; :class:`SaleNotInInbox` when the inbox never saw the sale."""
        progress = await self.facts.sale_progress(sale_id)
        if progress.receipt is not None:
            return progress.receipt
        found = progress.statuses
        if any(state in ACTIVE for state in found):
            raise Deferred(f"Waiting for sale {sale_id} to be posted first", 1.0)
        if "exception" in found:
            raise PaymentProblem(
                "rejected",
                f"This {what} is for sale {sale_id}, which is in the exceptions queue and was "
                "not posted",
                f"Resolve sale {sale_id} first, then retry this {what}.",
            )
        if found:
            raise Settled(f"Nothing was posted for sale {sale_id}, so the {what} changes nothing")
        raise SaleNotInInbox(sale_id)

    async def _check_period(self, target: LedgerTarget, on: dt.date) -> None:
        lockdown = await self.facts.lockdown_date()
        if lockdown is not None and on <= lockdown:
            raise PaymentProblem(
                "period_closed",
                f"The payment is dated {on.isoformat()}, in a period {target.name} "
                f"has closed (locked up to {lockdown.isoformat()})",
                "Re-open the period in the ledger, or post the payment by hand in the open "
                "period and ignore this exception with a note.",
            )


__all__ = [
    "LedgerTarget",
    "MappedFields",
    "Override",
    "PlanRequest",
    "Planner",
    "PlanningFacts",
    "ReceiptMapper",
    "RecordedReceipt",
    "SaleNotInInbox",
    "SaleProgress",
]
