"""The ledger's view of each linked member: balance, open invoices, transaction history.

Balances are read in full every run (the customer's balance where the ledger keeps one,
else the sum of its open invoices; one paged read of customers and of open invoices:
a balance moves with every posting and the ledger does not say when), transactions
incrementally (invoices and payments changed since the cursor, minus the overlap).
Rows are rewritten only when their content hash changed, so a run over unchanged data
writes nothing. History is kept to the accounting periods chosen for the connection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select

from ledgerlink.blocking import in_thread
from ledgerlink.connectors.base import Ledger
from ledgerlink.domain.periods import FinancialYear
from ledgerlink.store.db import Database
from ledgerlink.store.sync_models import MemberBalance, MemberTransaction
from ledgerlink.store.types import utcnow
from ledgerlink.sync.cursors import HighWater
from ledgerlink.sync.member_details import customer_links


@dataclass
class ViewCounts:
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    #: the newest change time the ledger reported for what was read (the next cursor)
    high_water: HighWater = field(default_factory=HighWater)

    def as_dict(self) -> dict[str, int]:
        return {"updated": self.updated, "unchanged": self.unchanged, "deleted": self.deleted}


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _links(db: Database, connection_id: int) -> dict[str, int]:
    with db.read() as session:
        return customer_links(session, connection_id)


async def _no_tick() -> None:
    return None


#: Called once per record read (a linked member's customer, open invoice or credit note; a
#: history document), so the run's progress bar moves as the ledger's pages arrive.
Tick = Callable[[], Awaitable[None]]


async def refresh_balances(
    db: Database, ledger: Ledger, connection_id: int, *, tick: Tick = _no_tick
) -> ViewCounts:
    links = await in_thread(_links, db, connection_id)
    balances: dict[int, tuple[str, int | None]] = {}
    async for customer in ledger.customers():
        member_id = links.get(customer.id)
        if member_id is not None:
            await tick()
            balance = customer.balance
            balances[member_id] = (
                balance.currency if balance is not None else customer.currency,
                balance.minor if balance is not None else None,
            )
    outstanding: dict[int, list[int]] = {}
    async for invoice in ledger.invoices(open_only=True):
        member_id = links.get(invoice.customer_id)
        if member_id is not None:
            await tick()
            outstanding.setdefault(member_id, []).append(invoice.outstanding.minor)
    unused_credit: dict[int, int] = {}
    async for note in ledger.credit_notes():
        member_id = links.get(note.customer_id)
        if member_id is not None and not note.deleted:
            await tick()
            unused_credit[member_id] = unused_credit.get(member_id, 0) + note.unallocated.minor

    def store() -> ViewCounts:
        counts = ViewCounts()
        with db.transaction() as session:
            existing = {
                row.member_id: row
                for row in session.scalars(
                    select(MemberBalance).where(MemberBalance.connection_id == connection_id)
                )
            }
            for member_id, (currency, reported) in balances.items():
                open_amounts = outstanding.get(member_id, [])
                # A ledger that keeps no balance on the customer (Sage 500): what is still open,
                # less the credit not yet applied.
                minor = (
                    reported
                    if reported is not None
                    else sum(open_amounts) - unused_credit.get(member_id, 0)
                )
                digest = _digest(currency, minor, sum(open_amounts), len(open_amounts))
                row = existing.get(member_id)
                if row is not None and row.content_hash == digest:
                    counts.unchanged += 1
                    continue
                if row is None:
                    row = MemberBalance(connection_id=connection_id, member_id=member_id)
                    session.add(row)
                row.currency = currency
                row.balance_minor = minor
                row.outstanding_minor = sum(open_amounts)
                row.open_invoices = len(open_amounts)
                row.content_hash = digest
                row.refreshed_at = utcnow()
                counts.updated += 1
            for member_id, row in existing.items():
                if member_id not in balances:
                    session.delete(row)  # unlinked since
                    counts.deleted += 1
        return counts

    return await in_thread(store)


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One row of a member's history as the ledger has it; its fields are the columns of
    ``member_transactions`` it fills (the content hash is taken over them, by name)."""

    member_id: int
    kind: str
    number: str
    posted_on: date
    currency: str
    total_minor: int
    outstanding_minor: int
    status: str


def payment_key(payment_id: str) -> str:
    """A payment's key in the history: its own id space (a Sage 500 CustPmtKey can equal an
    InvcKey, and the two must not overwrite each other)."""
    return f"payment:{payment_id}"


def _in_periods(day: date, periods: list[FinancialYear]) -> bool:
    return not periods or any(p.contains(day) for p in periods)


async def refresh_transactions(
    db: Database,
    ledger: Ledger,
    connection_id: int,
    since: datetime | None,
    periods: list[FinancialYear],
    *,
    tick: Tick = _no_tick,
) -> ViewCounts:
    links = await in_thread(_links, db, connection_id)
    rows: dict[str, HistoryRow] = {}
    gone: set[str] = set()
    counts = ViewCounts()
    seen = counts.high_water
    async for invoice in ledger.invoices(open_only=False, changed_since=since):
        seen.saw(invoice.updated_at)
        await tick()
        member_id = links.get(invoice.customer_id)
        if member_id is None or not _in_periods(invoice.date, periods):
            continue
        rows[invoice.id] = HistoryRow(
            member_id=member_id,
            kind="invoice",
            number=invoice.number,
            posted_on=invoice.date,
            currency=invoice.total.currency,
            total_minor=invoice.total.minor,
            outstanding_minor=invoice.outstanding.minor,
            status=invoice.status.value,
        )
    async for payment in ledger.payments(changed_since=since):
        seen.saw(payment.updated_at)
        await tick()
        if payment.deleted:
            gone.add(payment_key(payment.id))
            continue
        member_id = links.get(payment.customer_id)
        if member_id is None or not _in_periods(payment.on, periods):
            continue
        rows[payment_key(payment.id)] = HistoryRow(
            member_id=member_id,
            kind=payment.kind,
            number=payment.reference,
            posted_on=payment.on,
            currency=payment.amount.currency,
            total_minor=payment.amount.minor,
            outstanding_minor=payment.unallocated.minor,
            status="",
        )
    async for note in ledger.credit_notes(changed_since=since):
        seen.saw(note.updated_at)
        await tick()
        if note.deleted:
            gone.add(note.id)
            continue
        member_id = links.get(note.customer_id)
        if member_id is None or not _in_periods(note.on, periods):
            continue
        rows[note.id] = HistoryRow(
            member_id=member_id,
            kind="credit_note",
            number=note.number,
            posted_on=note.on,
            currency=note.amount.currency,
            total_minor=note.amount.minor,
            outstanding_minor=note.unallocated.minor,
            status=note.status,
        )

    def store() -> ViewCounts:
        with db.transaction() as session:
            ids = list(rows) + list(gone)
            existing: dict[str, MemberTransaction] = {}
            for offset in range(0, len(ids), 500):
                for found in session.scalars(
                    select(MemberTransaction).where(
                        MemberTransaction.connection_id == connection_id,
                        MemberTransaction.ledger_id.in_(ids[offset : offset + 500]),
                    )
                ):
                    existing[found.ledger_id] = found
            for ledger_id, row in rows.items():
                values = asdict(row)
                digest = _digest(sorted(values.items()))
                current = existing.get(ledger_id)
                if current is not None and current.content_hash == digest:
                    counts.unchanged += 1
                    continue
                if current is None:
                    current = MemberTransaction(connection_id=connection_id, ledger_id=ledger_id)
                    session.add(current)
                for key, value in values.items():
                    setattr(current, key, value)
                current.content_hash = digest
                current.refreshed_at = utcnow()
                counts.updated += 1
            if gone:
                result = session.execute(
                    delete(MemberTransaction).where(
                        MemberTransaction.connection_id == connection_id,
                        MemberTransaction.ledger_id.in_(list(gone)),
                    )
                )
                counts.deleted += int(getattr(result, "rowcount", 0) or 0)
        return counts

    return await in_thread(store)
