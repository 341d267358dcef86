"""Asking for payment of each claimed invoice: the pay-link e-mail, the autopay charge on
the due date, and a declined charge's follow-up e-mail.

Every step is claimed first (:func:`claim`: a conditional update of the request's state
with a lease), then done through the existing paths — the pay link and its one e-mail
sender (:mod:`ledgerlink.paylinks`), the stored-profile charge
(:func:`ledgerlink.payments.charges.charge_invoice`, which posts the payment as a receipt
applied to the invoice like any card payment, and raises a decline as a payment exception
through the inbox) — and then recorded. :mod:`.states` explains what a crash in between
leads to.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from dataclasses import dataclass

import structlog
from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_db_thread, reading
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.domain.money import Money
from ledgerlink.identity.principal import system_principal
from ledgerlink.invoice_requests import states
from ledgerlink.invoice_requests.gateways import gateway_for_ledger
from ledgerlink.invoice_requests.preferences import mode_of
from ledgerlink.invoice_requests.settling import StartedSale, find_started_sale
from ledgerlink.paylinks.links import CreatedLink, create_link, in_flight
from ledgerlink.paylinks.mail import send_link
from ledgerlink.paylinks.sending import LinkMail, checked_address, email_link
from ledgerlink.payments.charge_outcomes import (
    ChargeRefused,
    ChargeResult,
    settle_sending_charge,
)
from ledgerlink.payments.charges import charge_invoice
from ledgerlink.payments.earlier_charges import UNSETTLED
from ledgerlink.payments.lapsed_claims import SETTLER, outcome_from_record
from ledgerlink.payments.notify import smtp_connection
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.payments.targets import PaymentTargets
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.db import Database
from ledgerlink.store.invoice_request_models import InvoiceRequest
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentCharge
from ledgerlink.store.types import utcnow

log = structlog.get_logger("ledgerlink.invoice_requests")

#: How the audit chain names the e-mails and charges this module makes.
REQUESTS = system_principal("invoice requests")
AUTOPAY = system_principal("autopay")


@dataclass(frozen=True)
class Claimed:
    """A request taken in hand by this run (its row as it was claimed)."""

    id: int
    connection_id: int
    invoice_id: str
    invoice_number: str
    member_id: int | None
    mode: str
    state: str  # the state it was moved to
    previous: str  # the state it was claimed from
    amount: Money
    due_date: dt.date | None
    attempts: int
    charge_key: str
    message: str


def _due(now: dt.datetime) -> ColumnElement[bool]:
    return or_(
        InvoiceRequest.state.in_(("pending", "followup_pending")),
        and_(
            InvoiceRequest.state == "scheduled",
            or_(InvoiceRequest.due_date.is_(None), InvoiceRequest.due_date <= now.date()),
        ),
        and_(
            InvoiceRequest.state.in_(tuple(states.LAPSED)),
            or_(InvoiceRequest.claimed_until.is_(None), InvoiceRequest.claimed_until < now),
        ),
    )


def due_ids(session: Session, now: dt.datetime, limit: int = 200) -> list[int]:
    return list(
        session.scalars(
            select(InvoiceRequest.id).where(_due(now)).order_by(InvoiceRequest.id).limit(limit)
        )
    )


def claim(db: Database, request_id: int, now: dt.datetime, lease_seconds: float) -> Claimed | None:
    """Take the request for this run if it is still due (another worker may have taken
    it): a conditional update, so two runs never both take it. A lapsed claim that may
    not be tried again becomes ``unconfirmed``; None then, and when it was not due."""
    with db.transaction() as session:
        row = session.get(InvoiceRequest, request_id)
        if row is None:
            return None
        previous = row.state
        if previous in states.LAPSED:
            if row.claimed_until is not None and row.claimed_until >= now:
                return None  # its worker still holds it
            target = states.LAPSED[previous]
        elif previous in states.CLAIMS:
            target = states.CLAIMS[previous]
            if previous == "scheduled" and row.due_date is not None and row.due_date > now.date():
                return None
        else:
            return None
        guard = and_(
            InvoiceRequest.id == request_id,
            InvoiceRequest.state == previous,
            InvoiceRequest.attempts == row.attempts,
        )
        if target is None:
            session.execute(
                update(InvoiceRequest)
                .where(guard)
                .values(
                    state=states.GAVE_UP,
                    claimed_until=None,
                    message=(
                        "Interrupted twice while e-mailing: the customer may have had the "
                        "pay link once or twice; it was not sent a third time. Check the "
                        "e-mail log before sending it yourself."
                    ),
                )
            )
            audit.record(
                session,
                actor=REQUESTS.actor,
                action="invoice_requests.unconfirmed",
                entity_type="invoice_request",
                entity_id=request_id,
                after={"invoice_number": row.invoice_number, "state": previous},
            )
            return None
        done = session.execute(
            update(InvoiceRequest)
            .where(guard)
            .values(
                state=target,
                attempts=row.attempts + 1,
                claimed_until=now + dt.timedelta(seconds=lease_seconds),
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return Claimed(
            id=row.id,
            connection_id=row.connection_id,
            invoice_id=row.invoice_id,
            invoice_number=row.invoice_number,
            member_id=row.member_id,
            mode=row.mode,
            state=target,
            previous=previous,
            amount=Money(row.amount_minor, row.currency),
            due_date=row.due_date,
            attempts=row.attempts + 1,
            charge_key=row.charge_key,
            message=row.message,
        )


def _finish(db: Database, claimed: Claimed, state: str, message: str, **values: str) -> str:
    """Record where the request ended up (audited), if this run still holds it."""
    with db.transaction() as session:
        done = session.execute(
            update(InvoiceRequest)
            .where(
                InvoiceRequest.id == claimed.id,
                InvoiceRequest.state == claimed.state,
                InvoiceRequest.attempts == claimed.attempts,
            )
            .values(state=state, message=message, claimed_until=None, **values)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return claimed.state  # taken over by another run meanwhile: its record wins
        audit.record(
            session,
            actor=(AUTOPAY if claimed.mode == "autopay" else REQUESTS).actor,
            action=f"invoice_requests.{state}",
            entity_type="invoice_request",
            entity_id=claimed.id,
            after={
                "invoice_number": claimed.invoice_number,
                "connection_id": claimed.connection_id,
                "message": message,
                **values,
            },
        )
    log.info("invoice_requests." + state, invoice=claimed.invoice_number, message=message)
    return state


def _release(db: Database, claimed: Claimed, why: str, **values: str) -> str:
    """Give the request back for the next run (nothing was sent: an upstream did not
    answer): to the state it was claimed from, due at once (a lapsed e-mail claim stays
    'may have been sent' by the run before), or ``failed`` after
    :data:`states.MAX_ATTEMPTS` runs."""
    if claimed.attempts >= states.MAX_ATTEMPTS:
        return _finish(db, claimed, "failed", f"{why} (tried {claimed.attempts} times)")
    back = claimed.previous
    with db.transaction() as session:
        session.execute(
            update(InvoiceRequest)
            .where(
                InvoiceRequest.id == claimed.id,
                InvoiceRequest.state == claimed.state,
                InvoiceRequest.attempts == claimed.attempts,
            )
            .values(state=back, message=why, claimed_until=None, **values)
            .execution_options(synchronize_session=False)
        )
    log.info("invoice_requests.released", invoice=claimed.invoice_number, why=why)
    return back


# -- the pay-link e-mail ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    gateway: Connection | None
    smtp: Connection | None


def _route(session: Session, ledger_connection_id: int) -> _Route:
    return _Route(gateway_for_ledger(session, ledger_connection_id), smtp_connection(session))


async def _link(runtime: Runtime, claimed: Claimed) -> tuple[CreatedLink | None, str | None, bool]:
    """The pay link to e-mail, or (None, why, retry?) when there is none to send."""
    route = await reading(runtime.db, lambda session: _route(session, claimed.connection_id))
    if route.gateway is None:
        return (
            None,
            "No PayTrace connection posts payments to this ledger; choose it under "
            "Accounting Integration → PayTrace → Post payments to",
            False,
        )
    if route.smtp is None:
        return (
            None,
            "No e-mail (SMTP) connection is set up; add one under Accounting Integration",
            False,
        )
    if not runtime.settings.base_url:
        return (
            None,
            "Set ledgerlink's public address (LEDGERLINK_BASE_URL) so the e-mail "
            "can carry a link the customer can open",
            False,
        )
    try:
        link = await create_link(
            runtime,
            REQUESTS,
            invoice_number=claimed.invoice_number,
            gateway_connection_id=route.gateway.id,
        )
    except ChargeRefused as refused:  # not in the ledger any more, or nothing left to pay
        return None, refused.message, False
    except PaymentProblem as problem:
        return None, f"{problem.reason}. {problem.fix}", False
    except UpstreamError as exc:
        return None, exc.message, True
    try:
        checked_address(link.customer_email, "customer")
    except ChargeRefused:
        return (
            None,
            (
                f"{link.customer_name} has no usable e-mail address in the ledger "
                f"({link.customer_email!r}); add one there and send the pay link from Payments"
            ),
            False,
        )
    return link, None, False


async def _send_pay_link(runtime: Runtime, claimed: Claimed) -> str:
    link, why, retry = await _link(runtime, claimed)
    if link is None:
        assert why is not None
        if retry:
            return await in_db_thread(functools.partial(_release, runtime.db, claimed, why))
        return await in_db_thread(functools.partial(_finish, runtime.db, claimed, "not_sent", why))
    try:
        to = await send_link(runtime, REQUESTS, link, link.customer_email)
    except ChargeRefused as refused:  # SMTP did not take it: nothing left, try again
        return await in_db_thread(functools.partial(_release, runtime.db, claimed, refused.message))
    due = link.due_date.isoformat() if link.due_date else "on receipt"
    message = f"Pay link for {link.amount_due.format_display()} (due {due}) e-mailed to {to}" + (
        " again after an interruption" if claimed.state == "resending" else ""
    )
    return await in_db_thread(
        functools.partial(_finish, runtime.db, claimed, "sent", message, emailed_to=to)
    )


# -- autopay ---------------------------------------------------------------------------------


async def _charge(runtime: Runtime, claimed: Claimed) -> str:
    db = runtime.db
    if claimed.member_id is not None:
        member_id = claimed.member_id
        mode = await reading(db, lambda session: mode_of(session, member_id))
        if mode != "autopay":
            return await in_db_thread(
                lambda: _finish(
                    db,
                    claimed,
                    "cancelled",
                    "Autopay was turned off before the due date; nothing was charged",
                )
            )
    gateway = await reading(db, lambda session: gateway_for_ledger(session, claimed.connection_id))
    if gateway is None:
        return await in_db_thread(
            lambda: _finish(
                db,
                claimed,
                "not_charged",
                "No PayTrace connection posts payments to this ledger; choose it under "
                "Accounting Integration → PayTrace → Post payments to",
            )
        )
    try:
        amount = await _still_due(runtime, claimed)
    except UpstreamError as exc:
        return await in_db_thread(functools.partial(_release, db, claimed, exc.message))
    except PaymentProblem as problem:
        why = f"{problem.reason}. {problem.fix}"
        return await in_db_thread(functools.partial(_finish, db, claimed, "not_charged", why))
    if amount is not None and amount.minor <= 0:
        why = (
            f"Invoice {claimed.invoice_number} has nothing left to pay once the pay-link "
            "payments being posted are counted; nothing was charged"
        )
        return await in_db_thread(functools.partial(_finish, db, claimed, "not_charged", why))
    key = claimed.charge_key
    for _ in range(2):  # the recorded key, then (if it never reached PayTrace) the next one
        try:
            result = await charge_invoice(
                runtime,
                AUTOPAY,
                invoice_number=claimed.invoice_number,
                idempotency_key=key,
                amount=amount.format_plain() if amount is not None else "",
                gateway_connection_id=gateway.id,
            )
        except ChargeRefused as refused:  # nothing left to pay, no stored profile...
            return await in_db_thread(
                functools.partial(_finish, db, claimed, "not_charged", refused.message)
            )
        except PaymentProblem as problem:
            why = f"{problem.reason}. {problem.fix}"
            return await in_db_thread(functools.partial(_finish, db, claimed, "not_charged", why))
        except UpstreamError as exc:
            return await in_db_thread(functools.partial(_release, db, claimed, exc.message))
        if result.status not in ("sending", "unknown"):
            return await in_db_thread(functools.partial(_charged, db, claimed, result))
        if not result.repeated:
            # This run's own call has no answer (a lost reply): the claim is left to lapse,
            # and a later run asks PayTrace once the request can no longer be in flight.
            log.warning("invoice_requests.charge_unknown", invoice=claimed.invoice_number)
            return claimed.state
        # A run before this one was interrupted with the charge sent: PayTrace's record says.
        started = await find_started_sale(runtime, gateway, key)
        await in_db_thread(functools.partial(_settle_charge_row, runtime, key, started))
        if started is not None:
            return await in_db_thread(functools.partial(_adopted, db, claimed, started))
        key = states.next_charge_key(key)
        await in_db_thread(functools.partial(_rekey, db, claimed, key))
    return await in_db_thread(
        functools.partial(_release, db, claimed, "The charge could not be settled; retrying")
    )


async def _still_due(runtime: Runtime, claimed: Claimed) -> Money | None:
    """What autopay may charge when the customer already paid part through a pay link
    that is not posted yet (the ledger's open balance still counts it): the open balance
    less that; None (the whole open balance, as the charge path reads it) when nothing
    is in flight."""
    currency = claimed.amount.currency
    paying = await reading(
        runtime.db, lambda session: in_flight(session, claimed.invoice_number, currency)
    )
    if paying.minor <= 0:
        return None
    targets = PaymentTargets(runtime)
    try:
        opened = await targets.ledger_by_id(claimed.connection_id)
        invoice = await opened.ledger.find_invoice(claimed.invoice_number)
    finally:
        await targets.aclose()
    if invoice is None or not invoice.is_open:
        return Money.zero(currency)
    return invoice.outstanding - paying


def _rekey(db: Database, claimed: Claimed, key: str) -> None:
    """Record the next charge key before charging under it (the earlier one never reached
    PayTrace), so a crash now finds this one."""
    with db.transaction() as session:
        session.execute(
            update(InvoiceRequest)
            .where(InvoiceRequest.id == claimed.id, InvoiceRequest.state == claimed.state)
            .values(charge_key=key)
            .execution_options(synchronize_session=False)
        )


def _settle_charge_row(runtime: Runtime, key: str, sale: StartedSale | None) -> None:
    """The interrupted charge's own row records what PayTrace's record showed, so it stops
    counting as in flight: a pay link counts a ``sending`` charge as paid, and an
    operator's charge of the invoice waits for it (``payments/earlier_charges.py``)."""
    with runtime.db.read() as session:
        row = session.execute(
            select(PaymentCharge.id, PaymentCharge.status, PaymentCharge.invoice_number).where(
                PaymentCharge.idempotency_key == key
            )
        ).first()
    if row is None or row.status not in UNSETTLED:
        return
    status, transaction_id, message = outcome_from_record(
        sale, "Nothing was charged: PayTrace has no sale for this autopay charge"
    )
    settle_sending_charge(
        runtime,
        row.id,
        status=status,
        transaction_id=transaction_id,
        message=message,
        event=None,  # the PayTrace poller posts a sale found
        actor=SETTLER.actor,
        action="payment.autopay.charge.after_interruption",
        finding=f"Autopay's charge of invoice {row.invoice_number} was interrupted; "
        f"PayTrace's record: {message}",
        was=row.status,
    )


def _adopted(db: Database, claimed: Claimed, sale: StartedSale) -> str:
    words = (
        f"{sale.message} (transaction {sale.transaction_id}, found at PayTrace after an "
        "interruption; the PayTrace poller posts it)"
    )
    state = "charged" if sale.approved else "followup_pending"
    return _finish(db, claimed, state, words, transaction_id=sale.transaction_id)


def _charged(db: Database, claimed: Claimed, result: ChargeResult) -> str:
    transaction = result.transaction_id or ""
    match result.status:
        case "approved":
            return _finish(db, claimed, "charged", result.message, transaction_id=transaction)
        case "declined":
            return _finish(
                db, claimed, "followup_pending", result.message, transaction_id=transaction
            )
        case _:  # failed: PayTrace refused the call, nothing charged; a new key next run
            key = states.next_charge_key(claimed.charge_key)
            return _release(db, claimed, result.message, charge_key=key)


# -- a decline's follow-up -------------------------------------------------------------------


def _followup_mail(link: CreatedLink, reason: str) -> LinkMail:
    due = link.due_date.strftime("%d %B %Y") if link.due_date else "on receipt"
    subject = f"Invoice {link.invoice_number}: your automatic payment did not go through"
    body = (
        f"Dear {link.customer_name},\n\n"
        f"We tried to collect {link.amount_due.format_display()} ({link.amount_due.currency}) "
        f"for {link.organisation} invoice {link.invoice_number}, due {due}, from the card or "
        f"bank account you keep on file, and it did not go through: {reason}.\n\n"
        f"Please pay it here:\n{link.url}\n\n"
        f"The link works until {link.expires_at:%d %B %Y}. Your card is entered on "
        "PayTrace's secure card form; we never see the card number.\n"
    )
    return LinkMail(
        kind="pay_link",
        action="payment.pay_link",
        entity_type="pay_link",
        entity_id=link.nonce,
        url=link.url,
        subject=subject,
        body=body,
        reader="customer",
        about={"invoice_number": link.invoice_number, "why": "autopay declined"},
    )


async def _send_followup(runtime: Runtime, claimed: Claimed) -> str:
    declined = claimed.message
    link, why, retry = await _link(runtime, claimed)
    if link is None:
        assert why is not None
        if retry:
            return await in_db_thread(functools.partial(_release, runtime.db, claimed, why))
        text = f"{declined}. No follow-up e-mail: {why}"
        return await in_db_thread(functools.partial(_finish, runtime.db, claimed, "declined", text))
    reason = declined.removeprefix("PayTrace declined the card: ").strip() or "declined"
    try:
        to = await email_link(runtime, REQUESTS, _followup_mail(link, reason), link.customer_email)
    except ChargeRefused as refused:
        return await in_db_thread(functools.partial(_release, runtime.db, claimed, refused.message))
    text = f"{declined}. A pay link was e-mailed to {to}"
    return await in_db_thread(
        functools.partial(_finish, runtime.db, claimed, "declined", text, emailed_to=to)
    )


# -- a run ------------------------------------------------------------------------------------


async def work_due(
    runtime: Runtime, now: dt.datetime | None = None, *, followups: bool = True
) -> Counter[str]:
    """Take every due request in turn; counts of the states they ended in. ``now`` decides
    which autopay charges are due (tests move it instead of waiting for the due date)."""
    now = now or utcnow()
    lease = runtime.settings.payments_lease_seconds
    counts: Counter[str] = Counter()
    for request_id in await reading(runtime.db, lambda session: due_ids(session, now)):
        claimed = await in_db_thread(functools.partial(claim, runtime.db, request_id, now, lease))
        if claimed is None:
            continue
        try:
            if claimed.state in ("sending", "resending"):
                counts[await _send_pay_link(runtime, claimed)] += 1
            elif claimed.state == "charging":
                counts[await _charge(runtime, claimed)] += 1
            else:
                counts[await _send_followup(runtime, claimed)] += 1
        except Exception:  # one bad request must not stop the others; its claim lapses
            log.exception("invoice_requests.request_failed", invoice=claimed.invoice_number)
            counts["interrupted"] += 1
    # a decline's follow-up is due at once: sent in this run, not the next
    if followups and counts.get("followup_pending"):
        counts.update(await work_due(runtime, now, followups=False))
    return counts
