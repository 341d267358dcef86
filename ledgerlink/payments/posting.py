"""From an inbox event to a posting in the ledger, exactly once.

Each event goes through the same steps: **verify** (an unsigned push is read back from
PayTrace), **plan** (find the invoice and the customer, check the amount, currency and
period, map with the payment spec: what exactly will be written), **checkpoint** the
plan on the event, **execute** it against the ledger with the idempotency key
``paytrace:<transaction>:<kind>``, and **record** the posting with the event's new
status in one transaction (:mod:`ledgerlink.payments.queue`).

The checkpoint is what makes a retry safe after a crash at any point: a retried event
with a plan executes that plan again unchanged (the ledger answers with the first
posting), instead of re-validating against an invoice the first attempt already paid.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.connectors.base import CardGateway, Ledger
from ledgerlink.connectors.errors import (
    AuthExpired,
    Misconfigured,
    NotFound,
    Rejected,
    UpstreamError,
)
from ledgerlink.domain.accounts import Application, CardOutcome, ReceiptRequest, RefundRequest
from ledgerlink.domain.money import Money
from ledgerlink.mapping import MappingContext
from ledgerlink.mapping.transforms.customer_ids import LinkTable, harmonise
from ledgerlink.payments import hints, queue
from ledgerlink.payments.facts import (
    CardPayment,
    NotBorneOut,
    ReadBack,
    from_payload,
    from_transaction,
)
from ledgerlink.payments.inbox import DISPUTE_KINDS, UNSIGNED_SOURCES, InboundEvent, accept
from ledgerlink.payments.jobs import request_processing
from ledgerlink.payments.payers import find_payer
from ledgerlink.payments.problems import Deferred, PaymentProblem, Settled
from ledgerlink.store.group_commit import GroupCommit
from ledgerlink.store.models import Connection

log = structlog.get_logger("ledgerlink.payments")

SYSTEM_NAMES = {"sbc": "Sage Business Cloud", "sage500": "Sage 500"}
SPECS = {
    "sbc": "paytrace_transaction_to_sbc_contact_payment",
    "sage500": "paytrace_transaction_to_sage500_cash_receipt",
}
#: Tries against an unavailable upstream before the event goes to the exceptions queue
#: (about 10 minutes of backoff in all).
MAX_UPSTREAM_ATTEMPTS = 8
SALE_KINDS = ("sale", "capture")
#: Sources whose events are checked against PayTrace's record before they are planned.
READ_BACK_SOURCES = ("webhook",)


def backoff_seconds(attempt: int) -> float:
    return float(min(2 ** max(attempt, 1), 300))


def _system(connection: Connection) -> str:
    return SYSTEM_NAMES.get(connection.kind, connection.kind)


@dataclass
class OpenLedger:
    """The ledger connections a drain posts to, opened once and shared."""

    connection: Connection
    ledger: Ledger
    lockdown: dt.date | None
    lockdown_read_at: float


class PaymentProcessor:
    """Processes claimed events; one instance per drain, used from one event loop."""

    def __init__(
        self,
        runtime: Any,
        *,
        actor: str = "system:payments",
        commits: GroupCommit[Any] | None = None,
    ) -> None:
        self.runtime = runtime
        self.db = runtime.db
        self.actor = actor
        #: shared transactions for the small writes of many events (a drain passes one)
        self.commits = commits
        self._paytrace: dict[int | None, Connection] = {}
        self._targets: dict[int, int] = {}
        self._ledgers: dict[int, OpenLedger] = {}
        self._gateways: dict[int, CardGateway] = {}
        self._mappings: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._invoice_locks: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        for opened in self._ledgers.values():
            await opened.ledger.aclose()
        for gateway in self._gateways.values():
            await gateway.aclose()

    # -- one event ----------------------------------------------------------------------------

    async def handle(self, event: queue.ClaimedEvent) -> str:
        """Process ``event`` and record the outcome; returns the event's new status."""
        try:
            outcome = await self._process(event)
        except Deferred as waiting:
            why, seconds = waiting.why, waiting.seconds
            await self._write(lambda session: queue.defer(session, event.id, why, seconds))
            return "received"
        except Settled as settled:
            outcome = queue.Outcome("ignored", settled.why)
        except PaymentProblem as problem:
            outcome = queue.Outcome("exception", problem.reason, problem=problem)
        except UpstreamError as exc:
            retry = exc.retryable and not isinstance(exc, (AuthExpired, Misconfigured))
            if retry and event.attempts < MAX_UPSTREAM_ATTEMPTS:
                seconds = backoff_seconds(event.attempts)
                why = f"{exc.message} (trying again)"
                await self._write(lambda session: queue.defer(session, event.id, why, seconds))
                return "received"
            outcome = queue.Outcome("exception", exc.message, problem=_upstream_problem(exc))
        if event.source in UNSIGNED_SOURCES and outcome.status == "exception":
            # A hint opens no exception: the poller brings the real event regardless.
            outcome = queue.Outcome("unverified", f"Not looked up in PayTrace: {outcome.message}")
        await self._write(lambda session: queue.finish(session, event, outcome, self.actor))
        log.info(
            "payments.event_processed",
            event_id=event.id,
            transaction_id=event.transaction_id,
            kind=event.kind,
            status=outcome.status,
        )
        return outcome.status

    async def _process(self, event: queue.ClaimedEvent) -> queue.Outcome:
        if event.source in UNSIGNED_SOURCES:
            return await self._confirm_hint(event)
        # Payments for one invoice are planned and posted one at a time here; a payment
        # racing another worker is refused by the ledger and planned again below.
        invoice = str(event.payload.get("invoice_id") or "")
        lock = self._invoice_locks.setdefault(invoice, asyncio.Lock()) if invoice else None
        if lock is None:
            return await self._plan_and_execute(event)
        async with lock:
            return await self._plan_and_execute(event)

    async def _plan_and_execute(self, event: queue.ClaimedEvent) -> queue.Outcome:
        plan = event.payload.get("plan")
        if plan is None:
            read_back = await self._verified(event)
            plan = await self._plan(event, read_back.payment)
            if read_back.disagreements:
                plan["disagreement"] = "; ".join(read_back.disagreements)
            await self._checkpoint(event, plan)
        try:
            outcome = await self._execute(plan)
        except PaymentProblem as problem:
            replans = int(event.payload.get("replans") or 0)
            if problem.code != "rejected" or not plan.get("apply_minor") or replans >= 2:
                raise
            # The ledger refused the application: the invoice changed after it was read
            # (another payment got there first). Nothing was posted; plan again.
            await self._checkpoint(event, None, replans=replans + 1)
            raise Deferred(f"{problem.reason}; planning again", 0.2) from None
        if plan.get("disagreement"):
            outcome = replace(
                outcome,
                message=f"{outcome.message} (PayTrace's record; {plan['disagreement']})",
            )
        return outcome

    # -- verify -------------------------------------------------------------------------------

    async def _confirm_hint(self, event: queue.ClaimedEvent) -> queue.Outcome:
        """A silent post: PayTrace's record of the transaction goes into the inbox (see
        :mod:`ledgerlink.payments.hints`); the hint itself posts nothing."""
        paytrace = self.paytrace_connection(event.connection_id)
        currency = str(paytrace.settings.get("currency") or "USD")
        confirmation = await hints.confirm(event, await self._gateway(paytrace), currency)
        real = confirmation.real
        if real is not None:

            def store(session: Session) -> None:
                if accept(session, real)[1]:
                    request_processing(self.runtime.jobs, session)

            await self._write(store)
        return confirmation.outcome

    async def _verified(self, event: queue.ClaimedEvent) -> ReadBack:
        """What the event says, checked against PayTrace's record where PayTrace has one.

        Signed webhooks are read back too (defence in depth: the secret alone must not be
        enough to post); chargebacks and won disputes are not in PayTrace's API and come
        only from signed or imported sources."""
        paytrace = self.paytrace_connection(event.connection_id)
        currency = str(paytrace.settings.get("currency") or "USD")
        on = event.received_at.date()
        claimed = from_payload(event.transaction_id, event.kind, event.payload, on, currency)
        if event.source not in READ_BACK_SOURCES or event.kind in DISPUTE_KINDS:
            return ReadBack(claimed)
        gateway = await self._gateway(paytrace)
        try:
            return from_transaction(claimed, await gateway.transaction(event.transaction_id))
        except NotFound:
            reason = (
                f"A webhook signed with this connection's secret names transaction "
                f"{event.transaction_id}, which PayTrace does not have"
            )
        except NotBorneOut as not_borne_out:
            reason = f"A signed webhook does not match PayTrace: {not_borne_out.reason}"
        raise PaymentProblem(
            "unverified",
            reason,
            "Nothing was posted. Someone other than PayTrace's integration may hold the "
            "webhook secret: set a new one under Accounting Integration → PayTrace, give it "
            "to the sender, and ignore this exception.",
            critical=True,
        )

    # -- plan ---------------------------------------------------------------------------------

    async def _plan(self, event: queue.ClaimedEvent, payment: CardPayment) -> dict[str, Any]:
        kind = payment.kind
        if kind in SALE_KINDS:
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
            if payment.voided or event.void_received:
                raise Settled("Voided at PayTrace before it was posted: nothing to post")
            return await self._plan_receipt(event, payment, "sale")
        if kind == "authorization":
            raise Settled("An authorisation only: it is posted when it is captured")
        if kind == "dispute_won":
            return await self._plan_dispute_won(event, payment)
        if kind == "refund":
            return await self._plan_refund(event, payment)
        if kind in ("void", "chargeback"):
            return await self._plan_reversal(event, payment)
        raise Settled(f"Nothing is posted for a {kind}")

    async def _plan_receipt(
        self,
        event: queue.ClaimedEvent,
        payment: CardPayment,
        key_kind: str,
        *,
        customer_id: str | None = None,
    ) -> dict[str, Any]:
        target = await self._ledger_for(event)
        ledger, connection = target.ledger, target.connection
        override = event.payload.get("override") or {}
        invoice_number = str(override.get("invoice_number") or payment.invoice_number)
        on_account = bool(override.get("on_account"))
        payer_number = ""
        if customer_id is None and override.get("customer_number"):
            account = await ledger.find_customer(str(override["customer_number"]))
            if account is None:
                raise PaymentProblem(
                    "not_linked",
                    f"There is no customer {override['customer_number']} in "
                    f"{_system(connection)} to put the payment on account for",
                    "Check the customer number and choose Put on account again.",
                )
            customer_id, payer_number = account.id, account.number
        if payment.paytrace_customer_id and customer_id is None:
            customer_id, payer_number = await self._payer(target, payment.paytrace_customer_id)
        amount = payment.amount
        apply = Money.zero(amount.currency)
        invoice_id = ""
        if invoice_number and not on_account:
            invoice = await ledger.find_invoice(invoice_number)
            if invoice is None:
                raise PaymentProblem(
                    "invoice_not_found",
                    f"Invoice {invoice_number} is not in {_system(connection)}",
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
            policy = self.paytrace_connection(event.connection_id).settings.get(
                "overpayment", "on_account"
            )
            if over.minor > 0 and policy == "exception" and not override.get("accept_over"):
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
                + f"is not linked to a customer in {_system(connection)}",
                "Link the member to their PayTrace profile and ledger account, or apply the "
                "payment to an invoice, then retry.",
            )
        await self._check_period(target, payment.on)
        mapped = self._map(connection.kind, payment, key_kind, customer_id, payer_number)
        return {
            "action": "receipt",
            "ledger_connection_id": connection.id,
            "system": connection.kind,
            "key": f"paytrace:{payment.transaction_id}:{key_kind}",
            "transaction_id": payment.transaction_id,
            "original_transaction_id": "",
            "customer_id": customer_id,
            "invoice_id": invoice_id,
            "invoice_number": invoice_number if invoice_id else "",
            "amount_minor": amount.minor,
            "apply_minor": apply.minor,
            "currency": amount.currency,
            **mapped,
        }

    async def _plan_dispute_won(
        self, event: queue.ClaimedEvent, payment: CardPayment
    ) -> dict[str, Any]:
        with self.db.read() as session:
            chargeback = queue.event_status(session, f"{payment.transaction_id}:chargeback")
            if chargeback in queue.ACTIVE:
                raise Deferred("Waiting for the chargeback to be reversed first", 1.0)
            receipt = queue.receipt_for(session, payment.transaction_id)
            found = (
                (receipt.customer_id, receipt.invoice_number, receipt.amount_minor)
                if receipt is not None
                else None
            )
        if found is None:
            raise Settled(
                f"Dispute on transaction {payment.transaction_id} won, but no receipt had been "
                "posted for it: nothing to post again"
            )
        customer_id, invoice_number, amount_minor = found
        again = CardPayment(
            transaction_id=payment.transaction_id,
            kind="dispute_won",
            amount=Money(amount_minor, payment.amount.currency),
            invoice_number=invoice_number or payment.invoice_number,
            paytrace_customer_id=payment.paytrace_customer_id,
            on=payment.on,
            approval_code=payment.approval_code,
        )
        plan = await self._plan_receipt(event, again, "dispute_won", customer_id=customer_id)
        plan["resolves_dispute_of"] = payment.transaction_id
        return plan

    async def _plan_refund(self, event: queue.ClaimedEvent, payment: CardPayment) -> dict[str, Any]:
        target = await self._ledger_for(event)
        connection = target.connection
        original = payment.original_transaction_id
        customer_id, invoice_id, invoice_number, reopen = "", "", "", 0
        if original:
            receipt = await self._receipt_or_wait(event, original, "refund")
            customer_id = receipt["customer_id"]
            invoice_id, invoice_number = receipt["invoice_id"], receipt["invoice_number"]
            with self.db.read() as session:
                refunded = queue.refunded_minor(session, original)
            reopen = max(0, min(payment.amount.minor, receipt["applied_minor"] - refunded))
        else:
            if payment.paytrace_customer_id:
                customer_id = (await self._payer(target, payment.paytrace_customer_id))[0] or ""
            if not customer_id:
                raise PaymentProblem(
                    "not_linked",
                    f"Refund {payment.transaction_id} is for no earlier sale and its PayTrace "
                    f"customer {payment.paytrace_customer_id or '(none)'} is not linked to a "
                    f"customer in {_system(connection)}",
                    "Link the member to their PayTrace profile and ledger account, then retry.",
                )
        await self._check_period(target, payment.on)
        mapped = self._map(connection.kind, payment, "refund", customer_id, "")
        if connection.kind == "sbc":
            reopen = 0  # an SBC refund pays money back; it cannot re-open an invoice
        return {
            "action": "refund",
            "ledger_connection_id": connection.id,
            "system": connection.kind,
            "key": f"paytrace:{payment.transaction_id}:refund",
            "transaction_id": payment.transaction_id,
            "original_transaction_id": original,
            "customer_id": customer_id,
            "invoice_id": invoice_id if reopen else "",
            "invoice_number": invoice_number,
            "amount_minor": payment.amount.minor,
            "apply_minor": reopen,
            "currency": payment.amount.currency,
            **mapped,
        }

    async def _plan_reversal(
        self, event: queue.ClaimedEvent, payment: CardPayment
    ) -> dict[str, Any]:
        target = await self._ledger_for(event)
        connection = target.connection
        chargeback = payment.kind == "chargeback"
        try:
            receipt = await self._receipt_or_wait(event, payment.transaction_id, payment.kind)
        except Settled as nothing:
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
        if receipt["reversed"]:
            raise Settled(f"The receipt for sale {payment.transaction_id} is already reversed")
        await self._check_period(target, payment.on)
        mapped = self._map(connection.kind, payment, payment.kind, receipt["customer_id"], "")
        with self.db.read() as session:
            refunded = queue.refunded_minor(session, payment.transaction_id)
        return {
            "action": "reversal",
            "ledger_connection_id": connection.id,
            "system": connection.kind,
            "key": f"paytrace:{payment.transaction_id}:{payment.kind}",
            "transaction_id": payment.transaction_id,
            "original_transaction_id": payment.transaction_id,
            "customer_id": receipt["customer_id"],
            "invoice_id": receipt["invoice_id"],
            "invoice_number": receipt["invoice_number"],
            "amount_minor": receipt["amount_minor"],
            "apply_minor": max(receipt["applied_minor"] - refunded, 0),
            "currency": payment.amount.currency,
            "receipt_posting_id": receipt["id"],
            "receipt_ledger_id": receipt["ledger_id"],
            "chargeback": chargeback,
            **mapped,
        }

    async def _receipt_or_wait(
        self, event: queue.ClaimedEvent, sale_id: str, what: str
    ) -> dict[str, Any]:
        """The receipt posted for sale ``sale_id``; waits (Deferred) while the sale is still
        to be processed, and fetches a sale the inbox never saw."""
        with self.db.read() as session:
            receipt = queue.receipt_for(session, sale_id)
            if receipt is not None:
                return {
                    "id": receipt.id,
                    "customer_id": receipt.customer_id,
                    "invoice_id": receipt.invoice_id,
                    "invoice_number": receipt.invoice_number,
                    "amount_minor": receipt.amount_minor,
                    "applied_minor": receipt.applied_minor,
                    "ledger_id": receipt.ledger_id,
                    "reversed": receipt.reversed_at is not None,
                }
            states = {
                kind: queue.event_status(session, f"{sale_id}:{kind}")
                for kind in ("sale", "capture")
            }
        found = [state for state in states.values() if state is not None]
        if any(state in queue.ACTIVE for state in found):
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
        await self._fetch_sale(event, sale_id)
        raise Deferred(f"Fetched sale {sale_id} from PayTrace; it is posted first", 1.0)

    async def _fetch_sale(self, event: queue.ClaimedEvent, sale_id: str) -> None:
        """A refund, void or chargeback arrived for a sale the inbox never got: read the
        sale from PayTrace and put it in the inbox, so it is posted before its reversal."""
        gateway = await self._gateway(self.paytrace_connection(event.connection_id))
        try:
            sale = await gateway.transaction(sale_id)
        except NotFound:
            raise PaymentProblem(
                "unverified",
                f"PayTrace has no sale {sale_id} for this {event.kind}",
                "Check the transaction in PayTrace; ignore this exception if it is not ours.",
            ) from None
        payload = {
            "transaction_id": sale.id,
            "amount": sale.amount.format_plain(),
            "currency": sale.amount.currency,
            "invoice_id": sale.invoice_number,
            "customer_id": sale.customer_id,
            "approval_code": sale.approval_code,
            "response_code": "102" if sale.outcome is CardOutcome.DECLINED else "101",
            "status": "voided" if sale.voided else "",
        }
        inbound = InboundEvent(
            "poller",
            sale.id,
            "sale",
            {k: v for k, v in payload.items() if v},
            verified=True,
            connection_id=event.connection_id,
        )
        with self.db.transaction() as session:
            accept(session, inbound)

    # -- checks and mapping -------------------------------------------------------------------

    async def _check_period(self, target: OpenLedger, on: dt.date) -> None:
        if time.monotonic() - target.lockdown_read_at > 60:
            target.lockdown = await target.ledger.lockdown_date()
            target.lockdown_read_at = time.monotonic()
        if target.lockdown is not None and on <= target.lockdown:
            raise PaymentProblem(
                "period_closed",
                f"The payment is dated {on.isoformat()}, in a period {_system(target.connection)} "
                f"has closed (locked up to {target.lockdown.isoformat()})",
                "Re-open the period in the ledger, or post the payment by hand in the open "
                "period and ignore this exception with a note.",
            )

    def _map(
        self, system: str, payment: CardPayment, key_kind: str, customer_id: str, number: str
    ) -> dict[str, Any]:
        """What the payment spec says: the date, GL account and reference to post with,
        and which version of the spec said it."""
        active = self._mapping(system)
        source = payment.mapping_source()
        payer = payment.paytrace_customer_id or number or "C00000"
        source["customer_id"] = payer
        links = LinkTable(
            [
                {
                    "paytrace": payer,
                    "sbc_contact_id": customer_id,
                    "sage500_cust_key": customer_id,
                }
            ]
        )
        result = active.compiled.apply(source, None, MappingContext(links=links))
        errors = [e for e in result.errors if e.field not in ("CustID", "contact_id")]
        if errors:
            raise PaymentProblem(
                "mapping",
                f"The payment spec {active.version} could not map the payment: "
                + "; ".join(f"{e.field}: {e.message}" for e in errors),
                "Fix the spec under Mappings (preview it on this payment), then retry.",
            )
        out = result.output
        if system == "sage500":
            date_text, gl, reference = out.get("TranDate"), out.get("GLAcctNo"), out.get("TranCmnt")
        else:
            date_text, gl, reference = out.get("date"), "", out.get("reference")
        return {
            "date": str(date_text or payment.on.isoformat()),
            "gl_account": str(gl or ""),
            "reference": str(reference or f"PayTrace {payment.transaction_id}"),
            "mapping_version": active.version,
        }

    def _mapping(self, system: str) -> Any:
        if system not in self._mappings:
            from ledgerlink.store.mapping_repo import mapping_repository

            repository = mapping_repository(self.runtime.settings)
            with self.db.read() as session:
                self._mappings[system] = repository.load(session, SPECS[system])
        return self._mappings[system]

    # -- execute ------------------------------------------------------------------------------

    async def _checkpoint(
        self, event: queue.ClaimedEvent, plan: dict[str, Any] | None, **extra: Any
    ) -> None:
        payload = {**event.payload, "plan": plan, **extra}
        if plan is None:
            payload.pop("plan")
        values = {"event_id": event.id, "payload": payload}
        await self._write(lambda session: session.execute(queue.SAVE_PAYLOAD, values))

    async def _write(self, work: Callable[[Session], Any]) -> None:
        """Commit ``work`` (with others under load) before going on."""
        if self.commits is not None:
            await self.commits.run(work)
            return
        with self.db.transaction() as session:
            work(session)

    async def _execute(self, plan: dict[str, Any]) -> queue.Outcome:
        target = await self._ledger_by_id(int(plan["ledger_connection_id"]))
        ledger, connection = target.ledger, target.connection
        currency = plan["currency"]
        amount = Money(int(plan["amount_minor"]), currency)
        applied = Money(int(plan["apply_minor"]), currency)
        on = dt.date.fromisoformat(plan["date"])
        applications = (Application(plan["invoice_id"], applied),) if applied.minor else ()
        action = plan["action"]
        common: dict[str, Any] = {
            "idempotency_key": plan["key"],
            "customer_id": plan["customer_id"],
            "date": on,
            "amount": amount,
            "applications": applications,
            "reference": plan["reference"],
            "gl_account": plan["gl_account"],
        }
        try:
            if action == "reversal" and connection.kind == "sbc":
                await ledger.reverse_receipt(plan["receipt_ledger_id"])  # type: ignore[attr-defined]
                ledger_id, replayed = plan["receipt_ledger_id"], False
            else:
                posted = await (
                    ledger.post_receipt(ReceiptRequest(**common))
                    if action == "receipt"
                    else ledger.post_refund(
                        RefundRequest(**common, chargeback=bool(plan.get("chargeback")))
                    )
                )
                ledger_id, replayed = posted.id, posted.replayed
        except Rejected as exc:
            raise PaymentProblem(
                "rejected",
                f"{_system(connection)} refused the {action}: {exc.message}",
                "Correct what the ledger names (in the ledger or the mapping), then retry.",
            ) from None
        posting = {
            "ledger_connection_id": connection.id,
            "system": connection.kind,
            "action": action,
            "idempotency_key": plan["key"],
            "ledger_id": str(ledger_id),
            "transaction_id": plan["transaction_id"],
            "original_transaction_id": plan.get("original_transaction_id", ""),
            "customer_id": plan["customer_id"],
            "invoice_id": plan["invoice_id"],
            "invoice_number": plan["invoice_number"],
            "amount_minor": amount.minor,
            "applied_minor": applied.minor,
            "currency": currency,
            "mapping_version": plan["mapping_version"],
            "replayed": replayed,
        }
        message = _describe(plan, connection, amount, applied, ledger_id)
        problem = None
        if plan.get("chargeback"):
            problem = PaymentProblem(
                "chargeback",
                f"Chargeback on transaction {plan['transaction_id']}: the receipt was reversed "
                + (
                    f"and invoice {plan['invoice_number']} is open again (in dispute)"
                    if plan["invoice_number"]
                    else "(in dispute)"
                ),
                "Answer the dispute in PayTrace. A won dispute posts the receipt again by "
                "itself; ignore this exception with the outcome if it is lost.",
            )
        return queue.Outcome(
            "posted",
            message,
            postings=(posting,),
            reversed_posting_id=plan.get("receipt_posting_id"),
            problem=problem,
            resolves_dispute_of=plan.get("resolves_dispute_of"),
        )

    # -- connections ------------------------------------------------------------------------

    def paytrace_connection(self, connection_id: int | None) -> Connection:
        """The PayTrace connection (read once per processor: a drain lasts two minutes at
        most, so a settings change is seen by the next one)."""
        if connection_id in self._paytrace:
            return self._paytrace[connection_id]
        found = self._read_paytrace(connection_id)
        self._paytrace[connection_id] = found
        return found

    def _read_paytrace(self, connection_id: int | None) -> Connection:
        with self.db.read() as session:
            if connection_id is not None:
                found = session.get(Connection, connection_id)
            else:
                candidates = session.scalars(
                    select(Connection).where(Connection.kind == "paytrace")
                ).all()
                found = candidates[0] if len(candidates) == 1 else None
            if found is None:
                raise PaymentProblem(
                    "configuration",
                    "No PayTrace connection receives this payment",
                    "Add the PayTrace connection under Accounting Integration, then retry.",
                    critical=True,
                )
            session.expunge(found)
            connection: Connection = found
            return connection

    async def _ledger_for(self, event: queue.ClaimedEvent) -> OpenLedger:
        return await self.ledger_for_gateway(self.paytrace_connection(event.connection_id))

    async def ledger_for_gateway(self, paytrace: Connection) -> OpenLedger:
        """The ledger a PayTrace connection's payments are posted to, opened."""
        if paytrace.id in self._targets:
            return await self._ledger_by_id(self._targets[paytrace.id])
        wanted = paytrace.settings.get("post_to_connection_id")
        with self.db.read() as session:
            if wanted:
                ledger_ids = [int(wanted)]
            else:
                ledger_ids = list(
                    session.scalars(
                        select(Connection.id).where(
                            Connection.kind.in_(("sbc", "sage500")), Connection.is_active
                        )
                    )
                )
        if len(ledger_ids) != 1:
            raise PaymentProblem(
                "configuration",
                "It is not set which ledger card payments are posted to"
                + (" (there are several)" if ledger_ids else " (there is none)"),
                "Choose the ledger under Accounting Integration → PayTrace → Post payments "
                "to, then retry.",
                critical=True,
            )
        self._targets[paytrace.id] = ledger_ids[0]
        return await self._ledger_by_id(ledger_ids[0])

    async def _ledger_by_id(self, connection_id: int) -> OpenLedger:
        async with self._lock:
            opened = self._ledgers.get(connection_id)
            if opened is not None:
                return opened
            from ledgerlink.connectors.factory import ledger_for

            with self.db.read() as session:
                connection = session.get(Connection, connection_id)
                if connection is not None:
                    session.expunge(connection)
            if connection is None or connection.kind not in SPECS:
                raise PaymentProblem(
                    "configuration",
                    f"Connection {connection_id}, chosen for card payments, is not a ledger",
                    "Choose SBC or Sage 500 under Accounting Integration → PayTrace, then retry.",
                    critical=True,
                )
            opened = OpenLedger(connection, ledger_for(self.runtime, connection), None, -1e9)
            self._ledgers[connection_id] = opened
            return opened

    async def _gateway(self, connection: Connection) -> CardGateway:
        async with self._lock:
            gateway = self._gateways.get(connection.id)
            if gateway is None:
                from ledgerlink.connectors.factory import gateway_for

                gateway = gateway_for(self.runtime, connection)
                self._gateways[connection.id] = gateway
            return gateway

    async def _payer(self, target: OpenLedger, paytrace_customer_id: str) -> tuple[str | None, str]:
        """(ledger customer id, its number) of a PayTrace customer, or (None, "")."""
        with self.db.read() as session:
            payer = find_payer(session, paytrace_customer_id, target.connection.id)
        if payer.ledger_customer_id:
            return payer.ledger_customer_id, payer.ledger_customer_number or ""
        if target.connection.kind == "sage500":
            # ledgerlink names PayTrace profiles after the Sage 500 CustID
            try:
                number = harmonise(paytrace_customer_id, "paytrace", "sage500").value
            except ValueError:
                return None, ""
            account = await target.ledger.find_customer(number)
            if account is not None:
                return account.id, account.number
        return None, ""


def _describe(
    plan: dict[str, Any], connection: Connection, amount: Money, applied: Money, ledger_id: Any
) -> str:
    system = _system(connection)
    text = amount.format_plain() + " " + amount.currency
    if plan["action"] == "receipt":
        message = f"Receipt {ledger_id} of {text} posted to {system}"
        if applied.minor:
            message += f", {applied.format_plain()} applied to invoice {plan['invoice_number']}"
        over = amount - applied
        if over.minor:
            message += f", {over.format_plain()} on account"
        return message
    if plan["action"] == "refund":
        message = f"Refund {ledger_id} of {text} posted to {system}"
        if applied.minor:
            message += f"; invoice {plan['invoice_number']} re-opened by {applied.format_plain()}"
        return message
    what = "Chargeback" if plan.get("chargeback") else "Void"
    return f"{what}: receipt for {text} reversed in {system}" + (
        f"; invoice {plan['invoice_number']} is open again" if plan["invoice_number"] else ""
    )


def _upstream_problem(exc: UpstreamError) -> PaymentProblem:
    if isinstance(exc, AuthExpired):
        fix = f"Reconnect {exc.system_name} under Accounting Integration, then retry."
    elif isinstance(exc, Misconfigured):
        fix = "Complete the connection's settings as the message says, then retry."
    else:
        fix = f"Check that {exc.system_name} is reachable (Dashboard → upstream health); retry."
    return PaymentProblem("upstream", exc.message, fix, critical=True)


__all__ = ["MAX_UPSTREAM_ATTEMPTS", "PaymentProcessor", "backoff_seconds"]
