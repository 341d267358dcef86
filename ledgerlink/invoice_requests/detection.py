"""Finding each ledger's new open invoices and claiming a request for those whose
customer's member asked for one.

Each ledger connection that a PayTrace connection posts to is read through its
:class:`~ledgerlink.connectors.base.InvoiceFeed` from the mark kept in
``invoice_feed_cursors`` (the ledger's own creation order, never our clock). The first
read only sets the mark: invoices that were open before ledgerlink looked are not new.
The rows claimed and the new mark are written in one transaction, so a crash between
them reads the same invoices again and the unique key (connection, invoice) drops what
was claimed; the feed's overlap is dropped the same way.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading, writing
from ledgerlink.connectors import registry
from ledgerlink.connectors.base import InvoiceFeed, NewInvoices
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.invoice_requests.gateways import gateway_for_ledger
from ledgerlink.invoice_requests.states import FIRST_STATE, charge_key
from ledgerlink.runtime import Runtime
from ledgerlink.store.invoice_request_models import (
    InvoiceFeedCursor,
    InvoiceRequest,
    InvoiceRequestSetting,
)
from ledgerlink.store.member_models import MemberLinkRow
from ledgerlink.store.models import Connection

log = structlog.get_logger("ledgerlink.invoice_requests")


def _requestable_ledgers(session: Session) -> list[Connection]:
    """Ledger connections some PayTrace connection posts to (detached)."""
    found = []
    for connection in session.scalars(
        select(Connection).where(Connection.kind.in_(registry.ledger_kinds()))
    ):
        if gateway_for_ledger(session, connection.id) is not None:
            found.append(connection)
    for connection in found:
        session.expunge(connection)
    return found


def _cursor(session: Session, connection_id: int) -> tuple[str | None, str | None]:
    """(mark, floor) of the connection's feed; (None, None) before its first read."""
    cursor = session.get(InvoiceFeedCursor, connection_id)
    return (cursor.mark, cursor.floor) if cursor is not None else (None, None)


def _known_at_floor(session: Session, connection_id: int) -> set[str]:
    cursor = session.get(InvoiceFeedCursor, connection_id)
    return set(cursor.floor_ids or ()) if cursor is not None else set()


def claim_new(session: Session, connection_id: int, page: NewInvoices) -> int:
    """Insert a request for each new invoice whose customer's member wants one, and move
    the connection's mark; how many requests were made."""
    customer_ids = {invoice.customer_id for invoice in page.invoices}
    members = dict(
        session.execute(
            select(MemberLinkRow.customer_id, MemberLinkRow.member_id).where(
                MemberLinkRow.connection_id == connection_id,
                MemberLinkRow.unlinked_at.is_(None),
                MemberLinkRow.customer_id.in_(customer_ids),
            )
        )
        .tuples()
        .all()
    )
    modes = dict(
        session.execute(
            select(InvoiceRequestSetting.member_id, InvoiceRequestSetting.mode).where(
                InvoiceRequestSetting.member_id.in_(set(members.values())),
                InvoiceRequestSetting.mode.in_(tuple(FIRST_STATE)),
            )
        )
        .tuples()
        .all()
    )
    seen = _known_at_floor(session, connection_id) | set(
        session.scalars(
            select(InvoiceRequest.invoice_id).where(
                InvoiceRequest.connection_id == connection_id,
                InvoiceRequest.invoice_id.in_({invoice.id for invoice in page.invoices}),
            )
        )
    )
    made = 0
    for invoice in page.invoices:
        member_id = members.get(invoice.customer_id)
        mode = modes.get(member_id) if member_id is not None else None
        if mode is None or invoice.id in seen or not invoice.is_open:
            continue
        row = InvoiceRequest(
            connection_id=connection_id,
            invoice_id=invoice.id,
            invoice_number=invoice.number,
            customer_id=invoice.customer_id,
            member_id=member_id,
            mode=mode,
            state=FIRST_STATE[mode],
            amount_minor=invoice.outstanding.minor,
            currency=invoice.outstanding.currency,
            due_date=invoice.due_date,
            attempts=0,
            charge_key=charge_key(connection_id, invoice.id) if mode == "autopay" else "",
            transaction_id="",
            emailed_to="",
            message="",
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # another reader claimed it first
            continue
        seen.add(invoice.id)
        made += 1
        log.info(
            "invoice_requests.found",
            connection_id=connection_id,
            invoice=invoice.number,
            mode=mode,
            amount=invoice.outstanding.format_plain(),
        )
    cursor = session.get(InvoiceFeedCursor, connection_id)
    if cursor is None:
        session.add(
            InvoiceFeedCursor(
                connection_id=connection_id,
                mark=page.mark,
                floor=page.mark,
                floor_ids=list(page.at_mark),
            )
        )
    else:
        cursor.mark = page.mark
    return made


async def detect_connection(runtime: Runtime, connection: Connection) -> int:
    """Read ``connection``'s new invoices and claim their requests; how many were made."""
    ledger = runtime.ledger_for(connection)
    try:
        if not isinstance(ledger, InvoiceFeed):
            log.info("invoice_requests.no_feed", connection_id=connection.id, kind=connection.kind)
            return 0
        mark, floor = await reading(runtime.db, lambda session: _cursor(session, connection.id))
        page = await ledger.invoices_created_after(mark, floor=floor)
    finally:
        await ledger.aclose()
    return await writing(runtime.db, lambda session: claim_new(session, connection.id, page))


async def detect_new_invoices(runtime: Runtime) -> int:
    """Every requestable ledger's new invoices; a ledger that cannot be read is logged and
    read again next time (its mark did not move), without holding up the others."""
    made = 0
    for connection in await reading(runtime.db, _requestable_ledgers):
        try:
            made += await detect_connection(runtime, connection)
        except UpstreamError as exc:
            log.warning(
                "invoice_requests.read_failed", connection_id=connection.id, error=exc.message
            )
        except Exception:  # one ledger's bad data must not stop the others' requests
            log.exception("invoice_requests.read_failed", connection_id=connection.id)
    return made
