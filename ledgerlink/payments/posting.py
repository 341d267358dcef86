"""From an inbox event to a posting in the ledger, exactly once.

Each event goes through the same steps: **verify** (an unsigned push is read back from
PayTrace), **plan** (:mod:`ledgerlink.payments.planning`: find the invoice and the
customer, check the amount, currency and period, map with the payment spec: what exactly
will be written), **checkpoint** the plan on the event (:mod:`ledgerlink.payments.plans`),
**execute** it against the ledger with the idempotency key ``paytrace:<transaction>:<kind>``
(:mod:`ledgerlink.payments.execution`), and **record** the posting with the event's new
status in one transaction (:mod:`ledgerlink.payments.queue`). :class:`PaymentProcessor`
runs those steps with the drain's connections (:mod:`ledgerlink.payments.targets`) and
the store; the steps know neither.

The checkpoint is what makes a retry safe after a crash at any point: a retried event
with a plan executes that plan again unchanged (the ledger answers with the first
posting), instead of re-validating against an invoice the first attempt already paid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.orm import Session

from ledgerlink.blocking import writing
from ledgerlink.connectors.base import AchGateway
from ledgerlink.connectors.errors import AuthExpired, Misconfigured, NotFound, UpstreamError
from ledgerlink.domain.accounts import CardOutcome
from ledgerlink.domain.checks import check_id, is_ach
from ledgerlink.payments import ach, hints, queue
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
from ledgerlink.payments.ledger_facts import LedgerFacts
from ledgerlink.payments.planning import (
    Override,
    Planner,
    PlanRequest,
    SaleNotInInbox,
)
from ledgerlink.payments.plans import Plan, plan_from_json
from ledgerlink.payments.problems import Deferred, PaymentProblem, Settled
from ledgerlink.payments.targets import PaymentTargets
from ledgerlink.runtime import Runtime
from ledgerlink.store.group_commit import GroupCommit

log = structlog.get_logger("ledgerlink.payments")

#: Tries against an unavailable upstream before the event goes to the exceptions queue
#: (about 10 minutes of backoff in all).
MAX_UPSTREAM_ATTEMPTS = 8
#: Sources whose events are checked against PayTrace's record before they are planned.
READ_BACK_SOURCES = ("webhook",)


def backoff_seconds(attempt: int) -> float:
    return float(min(2 ** max(attempt, 1), 300))


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
        #: the connections events go through, opened once per drain
        self.targets = PaymentTargets(runtime)
        self._invoice_locks: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self.targets.aclose()

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
            target = await self.targets.ledger_by_id(plan.ledger_connection_id)
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
        paytrace = await self.targets.paytrace_connection(event.connection_id)
        currency = str(paytrace.settings.get("currency") or "USD")
        confirmation = await hints.confirm(event, await self.targets.gateway(paytrace), currency)
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
        paytrace = await self.targets.paytrace_connection(event.connection_id)
        currency = str(paytrace.settings.get("currency") or "USD")
        on = event.received_at.date()
        claimed = from_payload(event.transaction_id, event.kind, event.payload, on, currency)
        if event.source not in READ_BACK_SOURCES or event.kind in DISPUTE_KINDS:
            return ReadBack(claimed)
        gateway = await self.targets.gateway(paytrace)
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
        paytrace = await self.targets.paytrace_connection(event.connection_id)
        request = PlanRequest(
            payment,
            Override.from_payload(event.payload),
            void_received=event.void_received,
            overpayment=str(paytrace.settings.get("overpayment", "on_account")),
        )
        try:
            plan = await Planner(LedgerFacts(self.targets, event.connection_id)).plan(request)
            opened = await self.targets.ledger_by_id(plan.ledger_connection_id)
            return ach.with_ach_method(
                plan, opened.connection.kind, opened.rules, opened.connection.settings
            )
        except SaleNotInInbox as missing:
            await self._fetch_sale(event, missing.sale_id)
            raise Deferred(
                f"Fetched sale {missing.sale_id} from PayTrace; it is posted first", 1.0
            ) from None

    async def _fetch_sale(self, event: queue.ClaimedEvent, sale_id: str) -> None:
        """A refund, void or chargeback arrived for a sale the inbox never got: read the
        sale from PayTrace and put it in the inbox, so it is posted before its reversal."""
        gateway = await self.targets.gateway(
            await self.targets.paytrace_connection(event.connection_id)
        )
        if is_ach(sale_id):
            await self._fetch_check(event, gateway, sale_id)
            return
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

    async def _fetch_check(self, event: queue.ClaimedEvent, gateway: object, sale_id: str) -> None:
        """The ACH sale of a refund, void or return, read from PayTrace's checks export."""
        if not isinstance(gateway, AchGateway):
            raise PaymentProblem(
                "unverified",
                f"This {event.kind} is for ACH payment {sale_id}, which this gateway cannot read",
                "Post the ACH payment by hand, then ignore this exception.",
            )
        try:
            check = await gateway.check_by_id(check_id(sale_id))
        except NotFound:
            raise PaymentProblem(
                "unverified",
                f"PayTrace has no ACH payment {check_id(sale_id)} for this {event.kind}",
                "Check the payment in PayTrace; ignore this exception if it is not ours.",
            ) from None
        found = [e for e in ach.events_of(check, event.connection_id) if e.kind == "sale"]
        # the sale's events land together (one transaction), as the poller's would
        await writing(self.db, lambda session: [accept(session, inbound) for inbound in found])

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


def _upstream_problem(exc: UpstreamError) -> PaymentProblem:
    if isinstance(exc, AuthExpired):
        fix = f"Reconnect {exc.system_name} under Accounting Integration, then retry."
    elif isinstance(exc, Misconfigured):
        fix = "Complete the connection's settings as the message says, then retry."
    else:
        fix = f"Check that {exc.system_name} is reachable (Dashboard → upstream health); retry."
    return PaymentProblem("upstream", exc.message, fix, critical=True)


__all__ = ["MAX_UPSTREAM_ATTEMPTS", "PaymentProcessor", "backoff_seconds"]
