"""Send an invoice's lines as Level 3 data after an approved card sale, never blocking it.

Every path that charges a card for an invoice (a stored-card charge, a pay link) calls
:func:`send_for_invoice` once the sale is approved. It reads the card brand (PayTrace's
record of the sale), the invoice's lines (the ledger's ``invoice_lines`` port), builds the
Visa or MasterCard data with the PayTrace connection's commodity table, checks that it
adds up (:mod:`ledgerlink.domain.level_three`) and sends it. Whatever happens (our own sum
check refuses, PayTrace refuses, PayTrace cannot be reached, a bug), the sale stands and
posts as usual: the outcome is recorded by transaction id (``payment_level_three``), logged
without card data, and returned in words for the charge result and the payment's page.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_db_thread, reading
from ledgerlink.connectors import registry
from ledgerlink.connectors.errors import Rejected, UpstreamError
from ledgerlink.domain.level_three import (
    CommodityRule,
    CommodityTable,
    LevelThreeData,
    LevelThreeRefused,
    brand_of,
    build,
)
from ledgerlink.domain.money import Money
from ledgerlink.identity.principal import Principal
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.payments.targets import PaymentTargets
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.level_three_models import LevelThreeOutcome
from ledgerlink.store.models import Connection

log = structlog.get_logger("ledgerlink.payments.level_three")

SENT = "sent"
REFUSED = "refused"
FAILED = "failed"
NOT_APPLICABLE = "not_applicable"
BRAND_LABELS = {"visa": "Visa", "mastercard": "MasterCard"}
US_ZIP = re.compile(r"^\d{5}(-?\d{4})?$")


@dataclass(frozen=True)
class LevelThreeResult:
    """What became of a sale's Level 3 data; ``message`` is for the user, in words."""

    status: str  # sent | refused | failed | not_applicable
    message: str
    field: str = ""
    brand: str = ""
    line_count: int = 0


async def send_for_invoice(
    runtime: Runtime,
    principal: Principal,
    *,
    gateway_connection_id: int,
    transaction_id: str,
    invoice_number: str,
    amount: Money,
) -> LevelThreeResult:
    """Send Level 3 data for the approved, unsettled sale ``transaction_id`` of ``amount``
    paying ``invoice_number`` (the whole invoice, or part of it: then pro rata). Never
    raises; a second call for the same transaction returns the first outcome."""
    try:
        return await _send_once(
            runtime, principal, gateway_connection_id, transaction_id, invoice_number, amount
        )
    except Exception as exc:  # the store failed: the sale stands, the outcome is only logged
        log.exception("level_three.error", transaction_id=transaction_id, invoice=invoice_number)
        return LevelThreeResult(
            FAILED, f"Level 3 data not recorded: an unexpected error ({type(exc).__name__})"
        )


async def _send_once(
    runtime: Runtime,
    principal: Principal,
    gateway_connection_id: int,
    transaction_id: str,
    invoice_number: str,
    amount: Money,
) -> LevelThreeResult:
    earlier = await reading(runtime.db, lambda session: outcome_for(session, transaction_id))
    if earlier is not None:
        return earlier
    targets = PaymentTargets(runtime)
    sent: LevelThreeData | None = None
    try:
        sent, result = await _send(
            runtime, targets, gateway_connection_id, transaction_id, invoice_number, amount
        )
    except Exception as exc:  # a Level 3 fault must never undo or hide an approved sale
        log.exception("level_three.error", transaction_id=transaction_id, invoice=invoice_number)
        result = LevelThreeResult(
            FAILED, f"Level 3 data not sent: an unexpected error ({type(exc).__name__})"
        )
    finally:
        await targets.aclose()
    log.info(
        f"level_three.{result.status}",
        transaction_id=transaction_id,
        invoice=invoice_number,
        brand=result.brand,
        field=result.field,
        reason=result.message,
    )
    return await in_db_thread(
        lambda: _record(
            runtime, principal, gateway_connection_id, transaction_id, invoice_number, result, sent
        )
    )


async def _send(
    runtime: Runtime,
    targets: PaymentTargets,
    gateway_connection_id: int,
    transaction_id: str,
    invoice_number: str,
    amount: Money,
) -> tuple[LevelThreeData | None, LevelThreeResult]:
    try:
        connection = await targets.paytrace_connection(gateway_connection_id)
        opened = await targets.ledger_for_gateway(connection)
        gateway = runtime.gateway_for(connection)
    except PaymentProblem as problem:
        return None, LevelThreeResult(FAILED, f"Level 3 data not sent: {problem.reason}")
    except UpstreamError as exc:  # a connection that cannot be opened (missing settings)
        return None, LevelThreeResult(FAILED, f"Level 3 data not sent: {exc.message}")
    ledger_name = registry.label(opened.connection.kind)
    try:
        try:
            sale = await gateway.transaction(transaction_id)
        except UpstreamError as exc:
            return None, LevelThreeResult(
                FAILED, f"Level 3 data not sent: PayTrace's record of the sale: {exc.message}"
            )
        brand = brand_of(sale.card_type)
        if brand is None:
            return None, LevelThreeResult(
                NOT_APPLICABLE,
                f"Level 3 not applicable: {sale.card_type or 'this'} cards take no Level 3 "
                "data (only Visa and MasterCard purchasing cards do)",
            )
        label = BRAND_LABELS[brand]
        try:
            invoice = await opened.ledger.find_invoice(invoice_number)
            if invoice is None:
                return None, LevelThreeResult(
                    REFUSED,
                    f"Level 3 data not sent: invoice {invoice_number} is not in {ledger_name}",
                    field="invoice_number",
                    brand=brand,
                )
            detail = await opened.ledger.invoice_lines(invoice.id)
            customer = await opened.ledger.get_customer(invoice.customer_id)
        except UpstreamError as exc:
            return None, LevelThreeResult(
                FAILED,
                f"Level 3 data not sent: the invoice's lines could not be read from "
                f"{ledger_name}: {exc.message}",
                brand=brand,
            )
        if not detail.lines:
            return None, LevelThreeResult(
                NOT_APPLICABLE,
                f"Level 3 not sent: invoice {invoice_number} has no lines in {ledger_name} "
                "to describe",
                brand=brand,
            )
        try:
            data = build(
                detail,
                amount,
                brand,
                commodity_table(connection),
                customer_reference=customer.number,
                ship_to_zip=_zip(customer.address.postal_code),
                ship_from_zip=str(connection.settings.get("level_three_ship_from_zip") or ""),
            )
        except LevelThreeRefused as refused:
            return None, LevelThreeResult(
                REFUSED,
                f"Level 3 data not sent: {refused.message}. Correct the invoice's lines in "
                f"{ledger_name}; the {label} sale itself is approved and posts as usual",
                field=refused.field,
                brand=brand,
            )
        try:
            await gateway.add_level_three(transaction_id, data)
        except Rejected as exc:
            return data, LevelThreeResult(
                REFUSED,
                f"Level 3 data not sent: {exc.message}. The {label} sale itself is approved "
                "and posts as usual",
                field=exc.field or "",
                brand=brand,
            )
        except UpstreamError as exc:
            return data, LevelThreeResult(
                FAILED,
                f"Level 3 data not sent: {exc.message}. The {label} sale itself is approved "
                "and posts as usual",
                brand=brand,
            )
        lines = len(data.lines)
        return data, LevelThreeResult(
            SENT,
            f"Level 3 data sent to PayTrace ({label}, {lines} line{'s' if lines != 1 else ''}, "
            f"tax {data.tax.format_plain()})",
            brand=brand,
            line_count=lines,
        )
    finally:
        await gateway.aclose()


def commodity_table(connection: Connection) -> CommodityTable:
    """The PayTrace connection's commodity table (its settings, validated when saved)."""
    settings = connection.settings
    return CommodityTable(
        rules=tuple(
            CommodityRule(
                str(row.get("item_code") or ""),
                str(row.get("commodity_code") or ""),
                str(row.get("unit_of_measure") or ""),
            )
            for row in settings.get("level_three_commodities") or []
        ),
        default_commodity_code=str(settings.get("level_three_default_commodity_code") or ""),
        default_unit_of_measure=str(settings.get("level_three_default_unit") or "EA"),
    )


def outcome_for(session: Session, transaction_id: str) -> LevelThreeResult | None:
    """The recorded outcome for a sale, if Level 3 was tried for it."""
    row = session.scalar(
        select(LevelThreeOutcome).where(LevelThreeOutcome.transaction_id == transaction_id)
    )
    if row is None:
        return None
    return LevelThreeResult(row.status, row.message, row.field, row.brand, row.line_count)


def _record(
    runtime: Runtime,
    principal: Principal,
    gateway_connection_id: int,
    transaction_id: str,
    invoice_number: str,
    result: LevelThreeResult,
    sent: LevelThreeData | None,
) -> LevelThreeResult:
    try:
        with runtime.db.transaction() as session:
            row = LevelThreeOutcome(
                gateway_connection_id=gateway_connection_id,
                transaction_id=transaction_id,
                invoice_number=invoice_number[:64],
                brand=result.brand,
                status=result.status,
                field=result.field[:120],
                message=result.message,
                line_count=result.line_count,
                sent=_plain(sent) if sent is not None else None,
            )
            session.add(row)
            session.flush()
            audit.record(
                session,
                actor=principal.actor,
                action=f"payment.level_three.{result.status}",
                entity_type="payment_level_three",
                entity_id=row.id,
                after={"transaction_id": transaction_id, **asdict(result)},
            )
    except IntegrityError:  # sent twice at once: the first one's outcome stands
        with runtime.db.read() as session:
            first = outcome_for(session, transaction_id)
        return first or result
    return result


def _plain(data: LevelThreeData) -> dict[str, Any]:
    """``data`` as JSON (amounts as decimal strings, quantities as text)."""

    def value(item: Any) -> Any:
        if isinstance(item, Money):
            return item.format_plain()
        if isinstance(item, dict):
            return {k: value(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [value(v) for v in item]
        if isinstance(item, str | int | bool) or item is None:
            return item
        return str(item)

    return {
        "brand": data.brand,
        "invoice_number": data.invoice_number,
        "tax": data.tax.format_plain(),
        "ship_to_zip": data.ship_to_zip,
        "ship_from_zip": data.ship_from_zip,
        "lines": [
            {f.name: value(getattr(line, f.name)) for f in fields(line)} for line in data.lines
        ],
    }


def _zip(postal_code: str) -> str:
    """A US ZIP code's five digits (ZIP+4 shortened); anything else is not sent."""
    code = postal_code.strip()
    return code[:5] if US_ZIP.match(code) else ""
