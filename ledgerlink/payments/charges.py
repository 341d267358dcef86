"""Charge a customer's stored PayTrace card for an open invoice, once.

The operator names the invoice (and, if not the whole balance, the amount); the payer is
the invoice's customer, whose PayTrace profile (the vault token, never a card number) is
found through the member's links. The request is written first under its idempotency key,
so a second click or a retried call finds it instead of charging again; the resulting
payment enters the inbox as an event and is posted by the same path as any other.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_db_thread, reading
from ledgerlink.connectors.errors import NotFound, Unavailable, UpstreamError
from ledgerlink.domain.money import Money
from ledgerlink.identity.principal import Principal
from ledgerlink.mapping.errors import MappingValueError
from ledgerlink.mapping.transforms.customer_ids import harmonise
from ledgerlink.payments.charge_outcomes import (
    ChargeRefused,
    ChargeResult,
    charge_result,
    record_charge_outcome,
)
from ledgerlink.payments.earlier_charges import SETTLED_ELSEWHERE, settle_before_charging
from ledgerlink.payments.inbox import InboundEvent
from ledgerlink.payments.level_three import outcome_for, send_for_invoice
from ledgerlink.payments.profile_charges import charge_profile
from ledgerlink.payments.targets import OpenLedger, PaymentTargets
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.member_models import MemberLinkRow, MemberRow
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentCharge


def profile_for(
    session: Session, ledger: OpenLedger, customer_id: str, customer_number: str
) -> str | None:
    """The PayTrace customer id of a ledger customer: the member's PayTrace link, else the
    id ledgerlink derives from the member number (or, where ledgerlink names profiles
    after the ledger's customers, from the customer's number)."""
    member = session.execute(
        select(MemberRow.id, MemberRow.number)
        .join(MemberLinkRow, MemberLinkRow.member_id == MemberRow.id)
        .where(
            MemberLinkRow.connection_id == ledger.connection.id,
            MemberLinkRow.customer_id == customer_id,
            MemberLinkRow.unlinked_at.is_(None),
        )
    ).first()
    try:
        if member is not None:
            linked = session.scalar(
                select(MemberLinkRow.customer_id).where(
                    MemberLinkRow.member_id == member.id,
                    MemberLinkRow.system == "paytrace",
                    MemberLinkRow.unlinked_at.is_(None),
                )
            )
            return linked or harmonise(member.number, "member", "paytrace").value
        named = ledger.rules.profile_of_customer_number
        if named is not None and customer_number:
            return named(customer_number)
    except MappingValueError:
        return None
    return None


async def charge_invoice(
    runtime: Runtime,
    principal: Principal,
    *,
    invoice_number: str,
    idempotency_key: str,
    amount: str = "",
    gateway_connection_id: int | None = None,
) -> ChargeResult:
    """Charge the stored card of ``invoice_number``'s customer (the open balance, or
    ``amount``). Repeating the same ``idempotency_key`` returns the first outcome."""
    key = idempotency_key.strip()
    if not 8 <= len(key) <= 80:
        raise ChargeRefused("idempotency_key", "Send an idempotency key of 8 to 80 characters")
    if key.startswith(SETTLED_ELSEWHERE) and principal.via != "system":
        # ledgerlink's own pay-link and autopay charges' keys: their settling jobs would
        # take such a charge as theirs, and a repeat would answer with their outcome
        raise ChargeRefused(
            "idempotency_key",
            f"Idempotency-Key values starting {' or '.join(SETTLED_ELSEWHERE)} are the keys "
            "of ledgerlink's own pay-link and autopay charges; send a key of your own",
        )
    earlier = await reading(runtime.db, lambda session: _earlier(session, key))
    if earlier is not None:
        return earlier
    number = invoice_number.strip()
    if not number:
        raise ChargeRefused("invoice_number", "Enter the invoice number to charge")
    targets = PaymentTargets(runtime)
    try:
        gateway_connection = await targets.paytrace_connection(gateway_connection_id)
        target = await targets.ledger_for_gateway(gateway_connection)
        ledger, connection = target.ledger, target.connection
        invoice = await ledger.find_invoice(number)
        if invoice is None:
            raise ChargeRefused(
                "invoice_number",
                f"Invoice {number} is not in {connection.name}; check the number as "
                f"{connection.name} shows it",
            )
        if not invoice.is_open:
            raise ChargeRefused(
                "invoice_number", f"Invoice {number} has nothing left to pay; nothing to charge"
            )
        await settle_before_charging(runtime, gateway_connection, number)
        if amount.strip():
            try:
                wanted = Money.parse(amount.strip(), invoice.outstanding.currency)
            except ValueError as exc:
                raise ChargeRefused(
                    "amount", f"Enter the amount as a number like 50.00 ({exc})"
                ) from None
            if wanted.minor <= 0 or wanted > invoice.outstanding:
                raise ChargeRefused(
                    "amount",
                    f"Charge between 0.01 and the open balance "
                    f"{invoice.outstanding.format_plain()}",
                )
        else:
            wanted = invoice.outstanding
        customer = await ledger.get_customer(invoice.customer_id)
        profile = await reading(
            runtime.db, lambda session: profile_for(session, target, customer.id, customer.number)
        )
        if profile is None:
            raise ChargeRefused(
                "invoice_number",
                f"{customer.name} ({customer.number}) has no card stored with PayTrace: the "
                "member is not linked to a PayTrace customer profile. Link it on the member's "
                f"page, or send them a pay link for invoice {number} (Payments → Ask for "
                "payment by link) and ask them to tick 'Save this card'",
            )
        gateway = runtime.gateway_for(gateway_connection)
        try:
            try:
                stored = await gateway.customer(profile)
            except NotFound:
                raise ChargeRefused(
                    "invoice_number",
                    f"{customer.name} ({customer.number}) has no card stored with PayTrace "
                    f"(no customer profile {profile}); send them a pay link for invoice "
                    f"{number} (Payments → Ask for payment by link) and ask them to tick "
                    "'Save this card': that pays this invoice and stores the card for next time",
                ) from None
            charge_id = await in_db_thread(
                lambda: _start(runtime, principal, key, gateway_connection, profile, number, wanted)
            )
            if charge_id is None:  # a concurrent request with the same key won the race
                first = await reading(runtime.db, lambda session: _earlier(session, key))
                assert first is not None
                return first
            try:
                sale = await charge_profile(gateway, profile, stored, wanted, number)
            except UpstreamError as exc:
                unknown = isinstance(exc, Unavailable) and exc.outcome_unknown
                status = "unknown" if unknown else "failed"
                message = exc.message + (
                    "; check PayTrace before charging again (the poller brings the payment "
                    "if it went through)"
                    if unknown
                    else ""
                )
                return await in_db_thread(
                    lambda: _finish(runtime, principal, charge_id, status, None, message, None)
                )
        finally:
            await gateway.aclose()
    finally:
        await targets.aclose()
    event = InboundEvent(
        "manual",
        sale.transaction_id,
        "sale",
        sale.payload,
        verified=True,
        connection_id=gateway_connection.id,
    )
    status = "approved" if sale.approved else "declined"
    message = sale.message(wanted)
    result = await in_db_thread(
        lambda: _finish(runtime, principal, charge_id, status, sale.transaction_id, message, event)
    )
    if not sale.approved or sale.method != "card":
        return result
    # After the sale is recorded and queued for posting: Level 3 never blocks or undoes it.
    level_three = await send_for_invoice(
        runtime,
        principal,
        gateway_connection_id=gateway_connection.id,
        transaction_id=sale.transaction_id,
        invoice_number=number,
        amount=wanted,
    )
    return replace(result, level_three=level_three.message)


def _earlier(session: Session, key: str) -> ChargeResult | None:
    """The charge already asked for with ``key`` (a second click, a retried call)."""
    earlier = session.scalar(select(PaymentCharge).where(PaymentCharge.idempotency_key == key))
    if earlier is None:
        return None
    level_three = outcome_for(session, earlier.transaction_id) if earlier.transaction_id else None
    return replace(
        charge_result(earlier, repeated=True),
        level_three=level_three.message if level_three else "",
    )


def _start(
    runtime: Runtime,
    principal: Principal,
    key: str,
    gateway: Connection,
    profile: str,
    invoice_number: str,
    amount: Money,
) -> int | None:
    try:
        with runtime.db.transaction() as session:
            charge = PaymentCharge(
                idempotency_key=key,
                gateway_connection_id=gateway.id,
                paytrace_customer_id=profile,
                invoice_number=invoice_number,
                amount_minor=amount.minor,
                currency=amount.currency,
                status="sending",
                requested_by=principal.actor,
            )
            session.add(charge)
            session.flush()
            audit.record(
                session,
                actor=principal.actor,
                action="payment.charge",
                entity_type="payment_charge",
                entity_id=charge.id,
                after={
                    "invoice_number": invoice_number,
                    "paytrace_customer_id": profile,
                    "amount_minor": amount.minor,
                    "currency": amount.currency,
                },
            )
            return int(charge.id)
    except IntegrityError:
        return None


def _finish(
    runtime: Runtime,
    principal: Principal,
    charge_id: int,
    status: str,
    transaction_id: str | None,
    message: str,
    event: InboundEvent | None,
) -> ChargeResult:
    return record_charge_outcome(
        runtime,
        charge_id,
        status=status,
        transaction_id=transaction_id,
        message=message,
        event=event,
        actor=principal.actor,
        action="payment.charge",
        answer=lambda _session, charge: charge_result(charge),
    )
