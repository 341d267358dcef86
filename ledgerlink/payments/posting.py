"""From an inbox event to a posting in the ledger, exactly once.

Each event goes through the same steps: **verify** (an unsigned push is read back from
PayTrace), **plan** (:mod:`ledgerlink.payments.planning`: find the invoice and the
customer, check the amount, currency and period, map with the payment spec: what exactly
will be written), **checkpoint** the plan on the event (:mod:`ledgerlink.payments.plans`),
**execute** it against the ledger with the idempotency key ``paytrace:<transaction>:<kind>``
(:mod:`ledgerlink.payments.execution`), and **record** the posting with the event's new
status in one transaction (:mod:`ledgerlink.payments.queue`). :class:`PaymentProcessor`
runs those steps; it knows the connections and the store, the steps know neither.

The checkpoint is what makes a retry safe after a crash at any point: a retried event
with a plan executes that plan again unchanged (the ledger answers with the first
posting), instead of re-validating against an invoice the first attempt already paid.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.connectors import registry
from ledgerlink.connectors.base import CardGateway, CardPostingRules, PaymentLedger
from ledgerlink.connectors.errors import AuthExpired, Misconfigured, NotFound, UpstreamError
from ledgerlink.domain.accounts import CardOutcome, CustomerAccount, Invoice
from ledgerlink.payments import hints, queue
from ledgerlink.payments.blocking import reading, writing
from ledgerlink.payments.enqueue import request_processing
from ledgerlink.payments.execution import execute
from ledgerlink.payments.facts import (
    CardPayment,
    NotBorneOut,
    ReadBack,
    from_payload,
    from_transaction,
)
from ledgerlink.payments.inbox import DISPUTE_KINDS, UNSIGNED_SOURCES, InboundEvent, accept
from ledgerlink.payments.payers import find_payer
from ledgerlink.payments.planning import (
    LedgerTarget,
    Override,
    Planner,
    PlanRequest,
    ReceiptMapper,
    RecordedReceipt,
    SaleNotInInbox,
    SaleProgress,
)
from ledgerlink.payments.plans import Plan, plan_from_json
from ledgerlink.payments.problems import Deferred, PaymentProblem, Settled
from ledgerlink.runtime import Runtime
from ledgerlink.store.group_commit import GroupCommit
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentPosting

log = structlog.get_logger("ledgerlink.payments")

#: Tries against an unavailable upstream before the event goes to the exceptions queue
#: (about 10 minutes of backoff in all).
MAX_UPSTREAM_ATTEMPTS = 8
#: Sources whose events are checked against PayTrace's record before they are planned.
READ_BACK_SOURCES = ("webhook",)
#: How long a ledger's closed-period date is trusted before it is read again.
LOCKDOWN_READ_SECONDS = 60


def backoff_seconds(attempt: int) -> float:
    return float(min(2 ** max(attempt, 1), 300))


@dataclass
class OpenLedger:
    """A ledger connection a drain posts to, opened once and shared."""

    connection: Connection
    ledger: PaymentLedger
    rules: CardPostingRules
    target: LedgerTarget
    lockdown: dt.date | None = None
    lockdown_read_at: float = -1e9


class PaymentProcessor:
    """Processes claimed events; one instance per drain, used from one event loop."""

    def __init__(
        self,
        runtime: Runtime,
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
        self._mappers: dict[int, ReceiptMapper] = {}
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
        stored = event.payload.get("plan")
        if stored is None:
            read_back = await self._verified(event)
            plan = await self._plan(event, read_back.payment)
            if read_back.disagreements:
                plan = plan.with_disagreement("; ".join(read_back.disagreements))
            await self._checkpoint(event, plan)
        else:
            plan = plan_from_json(stored)
        try:
            target = await self._ledger_by_id(plan.ledger_connection_id)
            return await execute(plan, target.ledger, target.target.name)
        except PaymentProblem as problem:
            replans = int(event.payload.get("replans") or 0)
            if problem.code != "rejected" or not plan.applied.minor or replans >= 2:
                raise
            # The ledger refused the application: the invoice changed after it was read
            # (another payment got there first). Nothing was posted; plan again.
            await self._checkpoint(event, None, replans=replans + 1)
            raise Deferred(f"{problem.reason}; planning again", 0.2) from None

    # -- verify -------------------------------------------------------------------------------

    async def _confirm_hint(self, event: queue.ClaimedEvent) -> queue.Outcome:
        """A silent post: PayTrace's record of the transaction goes into the inbox (see
        :mod:`ledgerlink.payments.hints`); the hint itself posts nothing."""
        paytrace = await self.paytrace_connection(event.connection_id)
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
        paytrace = await self.paytrace_connection(event.connection_id)
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

    async def _plan(self, event: queue.ClaimedEvent, payment: CardPayment) -> Plan:
        paytrace = await self.paytrace_connection(event.connection_id)
        request = PlanRequest(
            payment,
            Override.from_payload(event.payload),
            void_received=event.void_received,
            overpayment=str(paytrace.settings.get("overpayment", "on_account")),
        )
        try:
            return await Planner(_EventFacts(self, event)).plan(request)
        except SaleNotInInbox as missing:
            await self._fetch_sale(event, missing.sale_id)
            raise Deferred(
                f"Fetched sale {missing.sale_id} from PayTrace; it is posted first", 1.0
            ) from None

    async def _fetch_sale(self, event: queue.ClaimedEvent, sale_id: str) -> None:
        """A refund, void or chargeback arrived for a sale the inbox never got: read the
        sale from PayTrace and put it in the inbox, so it is posted before its reversal."""
        gateway = await self._gateway(await self.paytrace_connection(event.connection_id))
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
        await writing(self.db, lambda session: accept(session, inbound))

    async def receipt_mapper(self, opened: OpenLedger) -> ReceiptMapper:
        """The ledger's active payment spec, loaded once per processor."""
        connection_id = opened.connection.id
        if connection_id not in self._mappers:
            name = registry.descriptor(opened.connection.kind).spec(registry.PAYMENT_TO_RECEIPT)
            active = await reading(
                self.db, lambda session: self.runtime.mappings.load(session, name)
            )
            self._mappers[connection_id] = ReceiptMapper(
                active.compiled, active.version, opened.rules
            )
        return self._mappers[connection_id]

    async def payer(self, opened: OpenLedger, paytrace_customer_id: str) -> tuple[str | None, str]:
        """(ledger customer id, its number) of a PayTrace customer, or (None, "")."""
        connection_id = opened.connection.id
        payer = await reading(
            self.db, lambda session: find_payer(session, paytrace_customer_id, connection_id)
        )
        if payer.ledger_customer_id:
            return payer.ledger_customer_id, payer.ledger_customer_number or ""
        # Where ledgerlink names PayTrace profiles after the ledger's customers, the
        # profile id names the customer even without a member link.
        named = opened.rules.customer_number_of_profile
        number = named(paytrace_customer_id) if named is not None else None
        if number is not None:
            account = await opened.ledger.find_customer(number)
            if account is not None:
                return account.id, account.number
        return None, ""

    # -- checkpoint and write -----------------------------------------------------------------

    async def _checkpoint(self, event: queue.ClaimedEvent, plan: Plan | None, **extra: Any) -> None:
        payload = {**event.payload, "plan": plan.to_json() if plan else None, **extra}
        if plan is None:
            payload.pop("plan")
        values = {"event_id": event.id, "payload": payload}
        await self._write(lambda session: session.execute(queue.SAVE_PAYLOAD, values))

    async def _write(self, work: Callable[[Session], Any]) -> None:
        """Commit ``work`` (with others under load) before going on."""
        if self.commits is not None:
            await self.commits.run(work)
            return
        await writing(self.db, work)

    # -- connections ------------------------------------------------------------------------

    async def paytrace_connection(self, connection_id: int | None) -> Connection:
        """The PayTrace connection (read once per processor: a drain lasts two minutes at
        most, so a settings change is seen by the next one)."""
        if connection_id in self._paytrace:
            return self._paytrace[connection_id]
        found = await reading(self.db, lambda session: _read_gateway(session, connection_id))
        self._paytrace[connection_id] = found
        return found

    async def ledger_for_event(self, event: queue.ClaimedEvent) -> OpenLedger:
        return await self.ledger_for_gateway(await self.paytrace_connection(event.connection_id))

    async def ledger_for_gateway(self, paytrace: Connection) -> OpenLedger:
        """The ledger a PayTrace connection's payments are posted to, opened."""
        if paytrace.id in self._targets:
            return await self._ledger_by_id(self._targets[paytrace.id])
        wanted = paytrace.settings.get("post_to_connection_id")
        if wanted:
            ledger_ids = [int(wanted)]
        else:
            ledger_ids = await reading(self.db, _active_ledger_ids)
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
            connection = await reading(self.db, lambda session: _detached(session, connection_id))
            rules = _card_posting(connection)
            if connection is None or rules is None:
                raise PaymentProblem(
                    "configuration",
                    f"Connection {connection_id}, chosen for card payments, is not a ledger",
                    "Choose SBC or Sage 500 under Accounting Integration → PayTrace, then retry.",
                    critical=True,
                )
            ledger = self.runtime.ledger_for(connection)
            name = registry.label(connection.kind)
            if not isinstance(ledger, PaymentLedger):
                raise PaymentProblem(
                    "configuration",
                    f"{name} cannot take card payments back (no receipt reversal)",
                    "Choose another ledger under Accounting Integration → PayTrace, then retry.",
                    critical=True,
                )
            target = LedgerTarget(
                connection.id, connection.kind, name, ledger.refunds_reopen_invoices
            )
            opened = OpenLedger(connection, ledger, rules, target)
            self._ledgers[connection_id] = opened
            return opened

    async def _gateway(self, connection: Connection) -> CardGateway:
        async with self._lock:
            gateway = self._gateways.get(connection.id)
            if gateway is None:
                gateway = self.runtime.gateway_for(connection)
                self._gateways[connection.id] = gateway
            return gateway


class _EventFacts:
    """What planning may read for one event: the ledger its PayTrace connection posts to
    (opened when first asked, so a payment settled before needing it never opens it), and
    what the store recorded (read in a worker thread)."""

    def __init__(self, processor: PaymentProcessor, event: queue.ClaimedEvent) -> None:
        self.processor = processor
        self.event = event

    async def _opened(self) -> OpenLedger:
        return await self.processor.ledger_for_event(self.event)

    async def target(self) -> LedgerTarget:
        return (await self._opened()).target

    async def find_customer(self, number: str) -> CustomerAccount | None:
        return await (await self._opened()).ledger.find_customer(number)

    async def find_invoice(self, number: str) -> Invoice | None:
        return await (await self._opened()).ledger.find_invoice(number)

    async def lockdown_date(self) -> dt.date | None:
        opened = await self._opened()
        if time.monotonic() - opened.lockdown_read_at > LOCKDOWN_READ_SECONDS:
            opened.lockdown = await opened.ledger.lockdown_date()
            opened.lockdown_read_at = time.monotonic()
        return opened.lockdown

    async def payer(self, paytrace_customer_id: str) -> tuple[str | None, str]:
        return await self.processor.payer(await self._opened(), paytrace_customer_id)

    async def receipt_mapper(self) -> ReceiptMapper:
        return await self.processor.receipt_mapper(await self._opened())

    async def sale_progress(self, sale_id: str) -> SaleProgress:
        return await reading(self.processor.db, lambda session: _sale_progress(session, sale_id))

    async def event_status(self, dedup_key: str) -> str | None:
        return await reading(
            self.processor.db, lambda session: queue.event_status(session, dedup_key)
        )

    async def refunded_minor(self, sale_id: str) -> int:
        return await reading(
            self.processor.db, lambda session: queue.refunded_minor(session, sale_id)
        )


# -- store reads (run in a worker thread) ---------------------------------------------------


def _read_gateway(session: Session, connection_id: int | None) -> Connection:
    if connection_id is not None:
        found = session.get(Connection, connection_id)
    else:
        candidates = session.scalars(
            select(Connection).where(Connection.kind.in_(registry.gateway_kinds()))
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
    return found


def _active_ledger_ids(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(Connection.id).where(
                Connection.kind.in_(registry.ledger_kinds()), Connection.is_active
            )
        )
    )


def _detached(session: Session, connection_id: int) -> Connection | None:
    connection = session.get(Connection, connection_id)
    if connection is not None:
        session.expunge(connection)
    return connection


def _card_posting(connection: Connection | None) -> CardPostingRules | None:
    """How card payments post to ``connection``'s kind; None when they cannot."""
    if connection is None or connection.kind not in registry.ledger_kinds():
        return None
    return registry.descriptor(connection.kind).card_posting


def _sale_progress(session: Session, sale_id: str) -> SaleProgress:
    row: PaymentPosting | None = queue.receipt_for(session, sale_id)
    if row is not None:
        return SaleProgress(
            RecordedReceipt(
                posting_id=row.id,
                customer_id=row.customer_id,
                invoice_id=row.invoice_id,
                invoice_number=row.invoice_number,
                amount_minor=row.amount_minor,
                applied_minor=row.applied_minor,
                ledger_id=row.ledger_id,
                reversed=row.reversed_at is not None,
            )
        )
    statuses = (queue.event_status(session, f"{sale_id}:{kind}") for kind in ("sale", "capture"))
    return SaleProgress(None, tuple(status for status in statuses if status is not None))


def _upstream_problem(exc: UpstreamError) -> PaymentProblem:
    if isinstance(exc, AuthExpired):
        fix = f"Reconnect {exc.system_name} under Accounting Integration, then retry."
    elif isinstance(exc, Misconfigured):
        fix = "Complete the connection's settings as the message says, then retry."
    else:
        fix = f"Check that {exc.system_name} is reachable (Dashboard → upstream health); retry."
    return PaymentProblem("upstream", exc.message, fix, critical=True)


__all__ = ["MAX_UPSTREAM_ATTEMPTS", "OpenLedger", "PaymentProcessor", "backoff_seconds"]
