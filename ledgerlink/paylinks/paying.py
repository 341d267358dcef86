"""Taking a payer's payment through a pay link, exactly once.

The payer's page posts only PayTrace's one-time token (``hpf_token`` + ``enc_key``), the
amount and an *attempt* id the page was drawn with. The charge is written first under the
key ``paylink:<link nonce>:<attempt>`` (unique), so a double click, a resent form or a
reload of the answer finds the first charge and its outcome instead of charging again;
PayTrace's duplicate filter is only a second line of defence.

With "save this card" the token first creates (or updates) the PayTrace customer profile of
the invoice's customer, which is then charged by profile (a token works once); the profile
is linked to the customer's member. The approved sale is read back from PayTrace by id and
put into the payments inbox as PayTrace's record, then posted like any other payment: a
receipt applied to the invoice, once.

A charge a crash left ``sending``, or whose request PayTrace did not answer in time
(``unknown``: the sale may have gone through), counts as paid (the page asks only for the
rest) until it is settled from PayTrace's own record once its lease lapsed
(:func:`settle_lapsed_charges`, :mod:`ledgerlink.payments.lapsed_claims`): when the payer
opens the link, resubmits or reloads the receipt, and every minute from a job. A sale found
is recorded and posted once, never charged again; none found means nothing was charged,
and the charge is given back so the payer can pay.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_db_thread, reading
from ledgerlink.connectors.errors import Unavailable, UpstreamError
from ledgerlink.connectors.paytrace.gateway import PayTraceGateway
from ledgerlink.connectors.paytrace.protect import (
    Billing,
    HostedCard,
    PayTraceProtect,
    token_refused,
)
from ledgerlink.connectors.paytrace.wiring import paytrace_gateway
from ledgerlink.domain.accounts import CardOutcome, CardTransaction
from ledgerlink.domain.money import Money, MoneyError
from ledgerlink.identity.principal import system_principal
from ledgerlink.paylinks import signed_links
from ledgerlink.paylinks.card_form import CARD_REFUSED, billing_for, hosted_card
from ledgerlink.paylinks.links import (
    KEY_PREFIX,
    PAY_LINK,
    LinkView,
    claims_of,
    read_view,
    view_link,
)
from ledgerlink.paylinks.profiles import link_profile, store_card
from ledgerlink.paylinks.signed_links import PayLinkRefused
from ledgerlink.payments.charge_outcomes import record_charge_outcome, settle_sending_charge
from ledgerlink.payments.charges import profile_for
from ledgerlink.payments.earlier_charges import UNSETTLED
from ledgerlink.payments.hints import READ_BACK
from ledgerlink.payments.inbox import InboundEvent
from ledgerlink.payments.lapsed_claims import SETTLER, find_started_sale, lapsed_before
from ledgerlink.payments.level_three import send_for_invoice
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.payments.targets import OpenLedger, PaymentTargets
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentCharge, PaymentEvent

log = structlog.get_logger("ledgerlink.paylinks")
_ATTEMPT = re.compile(r"^[A-Za-z0-9_-]{16,40}$")
#: Who a pay-link charge is audited as: the payer is not a ledgerlink user.
PAYER_ACTOR = "payer (pay link)"
#: PayTrace's response text for a sale that was not approved (its code 102)
_NOT_APPROVED = "Your transaction was not approved."


@dataclass(frozen=True)
class PayForm:
    attempt: str
    amount: str
    hpf_token: str
    enc_key: str
    save_card: bool = False
    name: str = ""


@dataclass(frozen=True)
class Payment:
    """A pay-link charge as the payer's receipt shows it."""

    status: str  # approved | declined | failed | unknown | sending
    amount: Money
    invoice_number: str
    transaction_id: str | None
    masked_card: str
    message: str
    posted: bool
    repeated: bool = False


def charge_key(nonce: str, attempt: str) -> str:
    return f"{KEY_PREFIX}{nonce}:{attempt}"


def valid_attempt(attempt: str) -> bool:
    return bool(_ATTEMPT.match(attempt))


async def find_payment(runtime: Runtime, token: str, attempt: str) -> Payment | None:
    """The payment made through this link with this attempt (its receipt), if any; a
    receipt stays readable after the link expired."""
    claims = claims_of(runtime, token, expired_ok=True)
    if not valid_attempt(attempt):
        return None
    await settle_lapsed_charges(runtime, invoice_number=claims.invoice_number)
    key = charge_key(claims.nonce, attempt)
    return await reading(runtime.db, lambda session: _earlier(session, key))


async def view_for_payer(runtime: Runtime, token: str) -> LinkView:
    """The pay page's view (:func:`view_link`), once the invoice's charges a crash left
    ``sending`` past the lease are settled: until then they count as paid, and a payer
    whose whole payment was interrupted would be told there is nothing left to pay."""
    claims = claims_of(runtime, token)
    await settle_lapsed_charges(runtime, invoice_number=claims.invoice_number)
    return await view_link(runtime, token)


async def pay(runtime: Runtime, token: str, form: PayForm) -> Payment:
    """Charge the card behind ``form``'s hosted-fields token for the link's invoice.

    Raises :class:`LinkUnusable` (changed, expired, nothing left to pay) or
    :class:`PayLinkRefused` naming the field (amount, card, save_card); either way nothing
    was charged and nothing is posted."""
    claims = claims_of(runtime, token)
    if not valid_attempt(form.attempt):
        raise PayLinkRefused("attempt", "This payment form is out of date; reload the page")
    await settle_lapsed_charges(runtime, invoice_number=claims.invoice_number)
    key = charge_key(claims.nonce, form.attempt)
    earlier = await reading(runtime.db, lambda session: _earlier(session, key))
    if earlier is not None:
        return earlier
    targets = PaymentTargets(runtime)
    try:
        try:
            opened = await targets.ledger_by_id(claims.ledger_connection_id)
            view = await read_view(runtime, claims, opened)
        except UpstreamError:
            raise signed_links.unavailable(PAY_LINK, "The invoice") from None
        amount = _amount(form.amount, view)
        card = hosted_card(form.hpf_token, form.enc_key)
        profile = None
        if form.save_card:
            profile = await reading(
                runtime.db,
                lambda session: profile_for(
                    session, opened, view.customer.id, view.customer.number
                ),
            )
            if profile is None:
                raise PayLinkRefused(
                    "save_card",
                    'This card cannot be kept for your account; untick "Save this card" to '
                    "pay without saving it",
                )
        gateway_connection = await targets.paytrace_connection(claims.gateway_connection_id)
        billing = billing_for(view.customer, form.name)
        charge_id = await in_db_thread(
            lambda: _start(runtime, key, gateway_connection, profile or "", view, amount)
        )
        if charge_id is None:  # the same attempt, sent twice at once: the first one answers
            first = await reading(runtime.db, lambda session: _earlier(session, key))
            assert first is not None
            return first
        return await _charge(
            runtime, charge_id, gateway_connection, opened, view, card, billing, amount, profile
        )
    finally:
        await targets.aclose()


def _amount(text: str, view: LinkView) -> Money:
    due = view.amount_due
    if not text.strip():
        return due
    try:
        wanted = Money.parse(text.strip().replace(",", ""), due.currency)
    except (MoneyError, ValueError):
        raise PayLinkRefused(
            "amount", f"Enter the amount to pay as a number like {due.format_plain()}"
        ) from None
    if wanted.minor <= 0 or wanted > due:
        raise PayLinkRefused(
            "amount",
            f"Enter an amount from 0.01 to {due.format_plain()} {due.currency}, the amount due",
        )
    return wanted


async def _charge(
    runtime: Runtime,
    charge_id: int,
    gateway_connection: Connection,
    opened: OpenLedger,
    view: LinkView,
    card: HostedCard,
    billing: Billing,
    amount: Money,
    profile: str | None,
) -> Payment:
    gateway = paytrace_gateway(runtime, gateway_connection)
    protect = PayTraceProtect(gateway)
    number = view.invoice.number
    try:
        try:
            if profile is not None:
                await store_card(protect, profile, card, billing)
                await in_db_thread(
                    lambda: link_profile(
                        runtime, opened, view.customer, profile, gateway_connection
                    )
                )
                sale = await gateway.sale_by_customer(profile, amount, invoice_number=number)
            else:
                sale = await protect.sale(card, amount, invoice_number=number, billing=billing)
        except UpstreamError as exc:
            refused = token_refused(exc)
            unknown = isinstance(exc, Unavailable) and exc.outcome_unknown
            status = "unknown" if unknown else "failed"
            message = CARD_REFUSED if refused else exc.message
            await in_db_thread(lambda: _finish(runtime, charge_id, status, None, message, None))
            if unknown:
                raise PayLinkRefused(
                    "card",
                    "PayTrace did not answer in time; the payment may have gone through. "
                    "Do not pay again: the sender will confirm it",
                ) from None
            # Whatever PayTrace refused (the token, the card, an outage), the payer's way
            # forward is at the card fields: enter the card again, or try later.
            raise PayLinkRefused("card", message) from None
        event = None
        if sale.outcome is CardOutcome.APPROVED:
            record = await _read_back(gateway, sale)
            event = InboundEvent(
                READ_BACK,
                record.id,
                "sale",
                _payload(record, sale, amount, number, profile),
                verified=True,
                connection_id=gateway_connection.id,
            )
            status, masked = "approved", record.masked_card or sale.masked_card
            message = f"Paid {amount.format_plain()} {amount.currency} with card {masked}"
        else:
            status = "declined"
            message = _declined(sale.status_message)
        payment = await in_db_thread(
            lambda: _finish(runtime, charge_id, status, sale.id, message, event)
        )
        if status == "declined":
            raise PayLinkRefused("card", message)
        log.info("paylink.paid", invoice=number, transaction_id=sale.id, amount=amount.minor)
        # The invoice's lines go to PayTrace as Level 3 data so a purchasing card qualifies.
        # Finance reads the outcome on the payment's page; the payer is not told: it never
        # changes what they paid, and send_for_invoice never raises.
        await send_for_invoice(
            runtime,
            system_principal(PAYER_ACTOR),
            gateway_connection_id=gateway_connection.id,
            transaction_id=sale.id,
            invoice_number=number,
            amount=amount,
        )
        return payment
    finally:
        await gateway.aclose()


def _declined(status_message: str) -> str:
    """What the payer reads for a declined card: the issuer's reason, without PayTrace's
    generic "not approved" sentence in front of it, and that nothing was taken."""
    reason = status_message.strip().removeprefix(_NOT_APPROVED).strip().rstrip(".")
    said = f": {reason}" if reason else ""
    return f"The card was declined{said}. Nothing was charged; try another card"


async def _read_back(gateway: PayTraceGateway, sale: CardTransaction) -> CardTransaction:
    """PayTrace's own record of the sale (as silent posts are confirmed); the sale's
    answer when the export cannot be read now (the poller reads it later)."""
    try:
        return await gateway.transaction(sale.id)
    except UpstreamError:
        return sale


def _payload(
    record: CardTransaction, sale: CardTransaction, amount: Money, number: str, profile: str | None
) -> dict[str, str]:
    payload = {
        "transaction_id": record.id,
        "amount": record.amount.format_plain(),
        "currency": record.amount.currency,
        "invoice_id": record.invoice_number or number,
        "customer_id": record.customer_id or profile or "",
        "approval_code": record.approval_code or sale.approval_code,
        "response": record.status_message or sale.status_message,
        "masked_card": record.masked_card or sale.masked_card,
        "response_code": "101",
    }
    return {name: value for name, value in payload.items() if value}


def _earlier(session: Session, key: str) -> Payment | None:
    charge = session.scalar(select(PaymentCharge).where(PaymentCharge.idempotency_key == key))
    return _payment(session, charge, repeated=True) if charge is not None else None


def _payment(session: Session, charge: PaymentCharge, repeated: bool = False) -> Payment:
    masked, posted = "", False
    if charge.transaction_id:
        event = session.scalar(
            select(PaymentEvent).where(PaymentEvent.dedup_key == f"{charge.transaction_id}:sale")
        )
        if event is not None:
            masked = str((event.payload or {}).get("masked_card") or "")
            posted = event.status == "posted"
    return Payment(
        status=charge.status,
        amount=Money(charge.amount_minor, charge.currency),
        invoice_number=charge.invoice_number,
        transaction_id=charge.transaction_id,
        masked_card=masked,
        message=charge.message or "",
        posted=posted,
        repeated=repeated,
    )


def _start(
    runtime: Runtime,
    key: str,
    gateway: Connection,
    profile: str,
    view: LinkView,
    amount: Money,
) -> int | None:
    try:
        with runtime.db.transaction() as session:
            charge = PaymentCharge(
                idempotency_key=key,
                gateway_connection_id=gateway.id,
                paytrace_customer_id=profile,
                invoice_number=view.invoice.number,
                amount_minor=amount.minor,
                currency=amount.currency,
                status="sending",
                requested_by=PAYER_ACTOR,
                requested_at=runtime.clock.now(),  # the lease is judged on this clock
            )
            session.add(charge)
            session.flush()
            audit.record(
                session,
                actor=PAYER_ACTOR,
                action="payment.pay_link.charge",
                entity_type="payment_charge",
                entity_id=charge.id,
                after={
                    "pay_link": view.claims.nonce,
                    "invoice_number": view.invoice.number,
                    "ledger_customer_id": view.customer.id,
                    "paytrace_customer_id": profile,
                    "amount_minor": amount.minor,
                    "currency": amount.currency,
                    "save_card": bool(profile),
                },
            )
            return int(charge.id)
    except IntegrityError:
        return None


def _finish(
    runtime: Runtime,
    charge_id: int,
    status: str,
    transaction_id: str | None,
    message: str,
    event: InboundEvent | None,
) -> Payment:
    return record_charge_outcome(
        runtime,
        charge_id,
        status=status,
        transaction_id=transaction_id,
        message=message,
        event=event,
        actor=PAYER_ACTOR,
        action="payment.pay_link.charge",
        answer=_payment,
    )


# -- charges a crash left 'sending', or PayTrace left 'unknown' ------------------------------

#: How the audit chain names a pay-link charge settled after an interruption.
SETTLED_ACTION = "payment.pay_link.charge.after_interruption"


@dataclass(frozen=True)
class _Lapsed:
    id: int
    key: str
    gateway_connection_id: int | None
    invoice_number: str
    amount: Money
    profile: str
    #: sending (a crash) or unknown (PayTrace did not answer in time)
    status: str


def _lapsed(session: Session, before: dt.datetime, invoice_number: str | None) -> list[_Lapsed]:
    query = select(PaymentCharge).where(
        PaymentCharge.idempotency_key.startswith(KEY_PREFIX),
        PaymentCharge.status.in_(UNSETTLED),
        PaymentCharge.requested_at < before,
    )
    if invoice_number is not None:
        query = query.where(PaymentCharge.invoice_number == invoice_number)
    return [
        _Lapsed(
            id=charge.id,
            key=charge.idempotency_key,
            gateway_connection_id=charge.gateway_connection_id,
            invoice_number=charge.invoice_number,
            amount=Money(charge.amount_minor, charge.currency),
            profile=charge.paytrace_customer_id,
            status=charge.status,
        )
        for charge in session.scalars(query.order_by(PaymentCharge.id).limit(100))
    ]


async def settle_lapsed_charges(
    runtime: Runtime, *, invoice_number: str | None = None
) -> Counter[str]:
    """Settle the pay-link charges (of ``invoice_number``, or all) a crash left ``sending``,
    or PayTrace's silence ``unknown``, for longer than the lease, from PayTrace's own
    record; counts by what became of them (approved, declined, released; ``unread`` when
    PayTrace could not be asked now, to be asked again; ``taken`` when another settler or
    the payer's own request got there first). Each is audited with what PayTrace's record showed."""
    counts: Counter[str] = Counter()
    before = lapsed_before(runtime)
    lapsed = await reading(runtime.db, lambda session: _lapsed(session, before, invoice_number))
    for charge in lapsed:
        counts[await _settle(runtime, charge)] += 1
    return counts


async def _settle(runtime: Runtime, charge: _Lapsed) -> str:
    targets = PaymentTargets(runtime)
    try:
        gateway_connection = await targets.paytrace_connection(charge.gateway_connection_id)
        started = await find_started_sale(runtime, gateway_connection, charge.key)
    except (UpstreamError, PaymentProblem) as exc:
        log.warning("paylink.charge_unsettled", charge=charge.id, why=str(exc))
        return "unread"
    finally:
        await targets.aclose()
    amount = f"{charge.amount.format_plain()} {charge.amount.currency}"
    unanswered = charge.status == "unknown"
    event = None
    record = started.record if started is not None else None
    if started is None or record is None:
        status, transaction_id = "failed", None
        if unanswered:
            message = (
                "Nothing was charged: PayTrace did not answer in time and has no sale for "
                "this payment. Enter the card again to pay"
            )
            finding = (
                f"PayTrace did not answer the pay-link payment of {amount} for invoice "
                f"{charge.invoice_number} in time, and has no sale for it: nothing was "
                "charged, and the payer can pay again with the link"
            )
        else:
            message = (
                "Nothing was charged: this payment was interrupted before it reached "
                "PayTrace. Enter the card again to pay"
            )
            finding = (
                f"The pay-link payment of {amount} for invoice {charge.invoice_number} was "
                "interrupted before it reached PayTrace: PayTrace has no sale for it, nothing "
                "was charged, and the payer can pay again with the link"
            )
    elif started.approved:
        status, transaction_id = "approved", record.id
        event = InboundEvent(
            READ_BACK,
            record.id,
            "sale",
            _payload(record, record, charge.amount, charge.invoice_number, charge.profile or None),
            verified=True,
            connection_id=gateway_connection.id,
        )
        message = f"Paid {amount} with card {record.masked_card}"
        why = (
            "did not answer in time"
            if unanswered
            else "ledgerlink was interrupted before recording it"
        )
        finding = (
            f"PayTrace took the pay-link payment of {amount} for invoice "
            f"{charge.invoice_number} (transaction {record.id}) but {why}: recorded now "
            "from PayTrace's record and posted once; the card was not charged again"
        )
    else:
        status, transaction_id = "declined", record.id
        message = _declined(record.status_message)
        why = "did not answer in time" if unanswered else "ledgerlink was interrupted"
        finding = (
            f"PayTrace declined the card for the pay-link payment of {amount} for invoice "
            f"{charge.invoice_number} (transaction {record.id}) and {why} before recording "
            "it: recorded now; nothing was charged"
        )
    kept = await in_db_thread(
        lambda: settle_sending_charge(
            runtime,
            charge.id,
            status=status,
            transaction_id=transaction_id,
            message=message,
            event=event,
            actor=SETTLER.actor,
            action=SETTLED_ACTION,
            finding=finding,
            was=charge.status,
        )
    )
    if not kept:
        return "taken"
    log.info("paylink.charge_settled", charge=charge.id, status=status)
    if status == "approved" and transaction_id:
        await send_for_invoice(
            runtime,
            SETTLER,
            gateway_connection_id=gateway_connection.id,
            transaction_id=transaction_id,
            invoice_number=charge.invoice_number,
            amount=charge.amount,
        )
    return "released" if status == "failed" else status
