"""Read the four sides of a scope into the store, incrementally, through the connectors.

* **transactions** and **batches**: the PayTrace gateway port — the transactions created
  since the cursor (minus a day: PayTrace exports by whole days), then every settlement
  batch settled since, with its transactions (which is how a transaction learns its
  batch). Chargebacks come from the payments inbox (the dispute reports ledgerlink
  imported), as PayTrace's transaction export does not list them.
* **receipts**: the ledger's *card* receipts and refunds (``payments(changed_since=…)``),
  joined with our own ``PaymentPosting`` rows: a receipt ledgerlink posted carries its
  idempotency key (``paytrace:<txn>:sale``) and the transaction it is for; one posted by
  hand carries whatever reference the bookkeeper typed (the engine's rules read it).
  **Which receipts are card receipts** (:func:`is_card_receipt`): one ledgerlink posted
  (it has a ``PaymentPosting``), one whose reference is a posting key (``paytrace:…``),
  and one whose reference names a PayTrace transaction by a reference pattern of the
  rules spec (``PT<number>``: a card payment keyed by hand). Everything else — a cheque,
  a bank transfer, any cash receipt typed in by hand with no PayTrace reference — is not
  card money and is not read: it would otherwise be "in the ledger with no approved
  PayTrace transaction", a false break. A card receipt naming a transaction PayTrace
  does not have stays an orphan; one keyed twice stays a duplicate. Neither ledger's
  port says which bank account or payment method a receipt used (``LedgerPayment``
  carries no such field; SBC's ``receipt_bank_account_id`` / ``payment_method_id`` and
  Sage 500's cash account are not read), so a card payment keyed by hand *without* a
  PayTrace reference is not recognised.
  **A duplicate reversed from its break**: SBC deletes the receipt (read as deleted: the
  stored row is marked reversed); Sage 500 keeps it and posts an undoing refund whose
  reference names it (:func:`undoing_reference`): the receipt is marked reversed (kept in the
  side's state, so a later read of the receipt does not unmark it) and the undoing entry
  is not read — the pair is out of the books together, and ``tables.py`` leaves out a
  receipt reversed while PayTrace took nothing back, so the duplicate clears and nothing
  new appears.
* **deposits**: statement lines are stored by the import (``recon/imports.py``); there is
  nothing to read.

Each side's rows and its cursor are written in one transaction, so an interrupted read
resumes where its data ends. The cursor is the largest upstream value seen (a creation or
settlement time, a payment date), never the local clock; a full read (the daily run)
re-reads everything, which also catches a payment back-dated behind the cursor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_db_thread, writing
from ledgerlink.connectors.base import CardGateway, LedgerHistory
from ledgerlink.domain.accounts import (
    CardOutcome,
    CardTransaction,
    CardTransactionKind,
    LedgerPayment,
)
from ledgerlink.domain.money import Money
from ledgerlink.recon import rule_specs
from ledgerlink.recon.fees import brand_key, refresh_expected
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentEvent, PaymentPosting
from ledgerlink.store.recon_models import (
    ReconBatch,
    ReconReceipt,
    ReconScope,
    ReconSideState,
    ReconTransaction,
)
from ledgerlink.store.types import utcnow

log = structlog.get_logger("ledgerlink.recon.sides")

#: The reference of the entry that undoes a duplicate receipt where the ledger keeps the
#: receipt (Sage 500: a refund of the same amount, posted by ``resolutions.reverse_duplicate``
#: through the ledger port). Written by :func:`undoing_reference`, read back by
#: :func:`undone_receipt`: one definition, so the two can never drift apart.
_UNDOING_PREFIX = "Reversal of duplicate receipt "
_UNDOING = re.compile(rf"^{re.escape(_UNDOING_PREFIX)}(\S+)$")
#: Ledger references hold at most this many characters (Sage 500's and ours).
REFERENCE_LIMIT = 100


def undoing_reference(receipt_id: str) -> str:
    """The reference of the entry that undoes duplicate receipt ``receipt_id``.

    A receipt id longer than the reference leaves room for is refused rather than cut, as
    a cut id would name another receipt (or none) when the side is read back.
    """
    reference = f"{_UNDOING_PREFIX}{receipt_id}"
    if len(reference) > REFERENCE_LIMIT or not _UNDOING.match(reference):
        raise ReconRefused(
            "receipt_id",
            f"receipt {receipt_id!r} cannot be named in a {REFERENCE_LIMIT}-character ledger "
            "reference; reverse it in the ledger, then mark the break explained",
        )
    return reference


def undone_receipt(reference: str) -> str | None:
    """The receipt an undoing entry's ``reference`` undoes, or None for any other entry."""
    found = _UNDOING.match(reference)
    return found.group(1) if found else None


#: How far back the first read of a scope goes.
HISTORY_DAYS = 120
#: Re-read this much before the cursor (PayTrace exports by whole days in its time zone;
#: a ledger payment may be entered a few days after the date it carries).
OVERLAP = {"transactions": timedelta(days=1), "batches": timedelta(days=1)}
RECEIPT_OVERLAP_DAYS = 7

_KINDS = {
    CardTransactionKind.SALE: "sale",
    CardTransactionKind.CAPTURE: "sale",
    CardTransactionKind.REFUND: "refund",
    CardTransactionKind.VOID: "void",
}
_BRANDS = {"4": "visa", "5": "mastercard", "2": "mastercard", "3": "amex", "6": "discover"}


@dataclass
class ReadCounts:
    """Rows read from upstream and rows new to the store, per side."""

    read: dict[str, int] = field(default_factory=dict)
    new: dict[str, int] = field(default_factory=dict)
    new_batches: list[str] = field(default_factory=list)

    def add(self, side: str, read: int, new: int) -> None:
        self.read[side] = self.read.get(side, 0) + read
        self.new[side] = self.new.get(side, 0) + new


def side_state(session: Session, scope_id: int, side: str) -> ReconSideState:
    state = session.get(ReconSideState, (scope_id, side))
    if state is None:
        state = ReconSideState(scope_id=scope_id, side=side, rows=0, state={})
        session.add(state)
    return state


def _cursor(db: Any, scope_id: int, side: str) -> tuple[datetime | None, dict[str, Any]]:
    with db.read() as session:
        state = session.get(ReconSideState, (scope_id, side))
        if state is None:
            return None, {}
        return state.cursor, dict(state.state or {})


def _window(cursor: datetime | None, side: str, today: date) -> tuple[date, date]:
    if cursor is None:
        return today - timedelta(days=HISTORY_DAYS), today + timedelta(days=1)
    return (cursor - OVERLAP[side]).date(), today + timedelta(days=1)


def _at(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# -- PayTrace ------------------------------------------------------------------------------


def transaction_row(t: CardTransaction, batch_number: str | None) -> dict[str, Any] | None:
    """A gateway transaction as a ``recon_transactions`` row (None: not money, e.g. an
    authorisation not captured)."""
    kind = _KINDS.get(t.kind)
    if kind is None or not t.id:
        return None
    if t.outcome is CardOutcome.DECLINED:
        status = "declined"
    elif t.voided or t.outcome is CardOutcome.APPROVED_THEN_VOIDED:
        status = "voided"
    else:
        status = "approved"
    created = t.created_at or t.settled_at
    digits = "".join(ch for ch in t.masked_card if ch.isdigit())
    brand = brand_key(t.card_type) if t.card_type else _BRANDS.get(digits[:1], "") if digits else ""
    return {
        "txn_id": t.id,
        "kind": kind,
        "status": status,
        "amount_minor": abs(t.amount.minor),
        "currency": t.amount.currency,
        "created_on": created.date() if created is not None else date.today(),
        "batch_number": batch_number,
        "card_brand": brand[:20],
        "original_txn_id": t.original_id or None,
        "invoice_number": t.invoice_number,
        "customer_id": t.customer_id,
    }


def _upsert(
    session: Session, model: Any, scope_id: int, key: str, rows: Iterable[dict[str, Any]]
) -> int:
    """Insert or update rows of ``model`` by (scope, ``key``); returns how many were new.
    A column given as None on an update keeps its stored value when the stored one is
    set (a transaction read again outside its batch keeps the batch it was seen in)."""
    by_key = {row[key]: row for row in rows}
    if not by_key:
        return 0
    column = getattr(model, key)
    existing = {}
    keys = list(by_key)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        for found in session.scalars(
            select(model).where(model.scope_id == scope_id, column.in_(chunk))
        ):
            existing[getattr(found, key)] = found
    now = utcnow()
    missing = [value for value in by_key if value not in existing]
    if missing:  # a read that finds every row stored already needs no savepoint
        missing = _insert_new(session, model, scope_id, key, by_key, missing, existing, now)
    for value, found in existing.items():
        for name, item in by_key[value].items():
            if item is None and getattr(found, name) is not None:
                continue
            if getattr(found, name) != item:
                setattr(found, name, item)
        found.read_at = now
    return len(missing)


def _insert_new(
    session: Session,
    model: Any,
    scope_id: int,
    key: str,
    by_key: dict[Any, dict[str, Any]],
    missing: list[Any],
    existing: dict[Any, Any],
    now: datetime,
) -> list[Any]:
    """Insert the ``missing`` rows under a savepoint; returns those inserted. Rows another
    read of this scope stored since they were looked up (a run from the portal while a
    worker's run reads too) are added to ``existing``, to be updated, instead."""
    try:
        with session.begin_nested():
            session.add_all(model(scope_id=scope_id, read_at=now, **by_key[v]) for v in missing)
            session.flush()
        return missing
    except IntegrityError:
        column = getattr(model, key)
        for found in session.scalars(
            select(model).where(model.scope_id == scope_id, column.in_(missing))
        ):
            existing[getattr(found, key)] = found
        rest = [value for value in missing if value not in existing]
        session.add_all(model(scope_id=scope_id, read_at=now, **by_key[v]) for v in rest)
        return rest


def _chargeback_rows(session: Session, gateway_id: int) -> list[dict[str, Any]]:
    """Chargebacks from the dispute reports imported into the payments inbox."""
    rows = []
    for event in session.scalars(
        select(PaymentEvent).where(
            PaymentEvent.connection_id == gateway_id, PaymentEvent.kind == "chargeback"
        )
    ):
        payload = event.payload or {}
        currency = str(payload.get("currency") or "USD")
        try:
            amount = Money.parse(str(payload.get("amount") or "0"), currency)
        except ValueError:
            continue
        rows.append(
            {
                "txn_id": f"CB-{event.transaction_id}",
                "kind": "chargeback",
                "status": "approved",
                "amount_minor": abs(amount.minor),
                "currency": amount.currency,
                "created_on": event.received_at.date(),
                "batch_number": None,
                "card_brand": "",
                "original_txn_id": event.transaction_id,
                "invoice_number": str(payload.get("invoice_id") or ""),
                "customer_id": str(payload.get("customer_id") or ""),
            }
        )
    return rows


async def read_paytrace(
    db: Any, scope: ReconScope, gateway: CardGateway, *, full: bool = False
) -> ReadCounts:
    """Read transactions and settlement batches of ``scope`` from ``gateway``."""
    counts = ReadCounts()
    today = utcnow().date()
    cursor, _ = (
        (None, {}) if full else await in_db_thread(partial(_cursor, db, scope.id, "transactions"))
    )
    start, end = _window(cursor, "transactions", today)
    found = await gateway.transactions(start, end)
    rows = [row for t in found if (row := transaction_row(t, None)) is not None]
    newest = max((_at(r["created_on"]) for r in rows), default=cursor)

    batch_cursor, batch_state = (
        (None, {}) if full else await in_db_thread(partial(_cursor, db, scope.id, "batches"))
    )
    b_start, b_end = _window(batch_cursor, "batches", today)
    known: set[str] = set(batch_state.get("known") or [])
    batch_rows: list[dict[str, Any]] = []
    for batch in await gateway.batches(b_start, b_end):
        if not batch.number:
            continue
        members = await gateway.batch_transactions(batch.number)
        member_rows = [row for t in members if (row := transaction_row(t, batch.number))]
        rows.extend(member_rows)
        gross = sum(
            r["amount_minor"] if r["kind"] == "sale" else -r["amount_minor"]
            for r in member_rows
            if r["status"] == "approved" and r["kind"] in ("sale", "refund")
        )
        # PayTrace's net is gross: fees and withheld chargebacks are filled in from the
        # scope's fee schedule and chargebacks when the rows are written (recon/fees.py)
        settled = batch.settled_at.date() if batch.settled_at is not None else today
        batch_rows.append(
            {
                "batch_number": batch.number,
                "settled_on": settled,
                "settled_at": batch.settled_at,
                "gross_minor": gross,
                "fees_minor": 0,
                "chargebacks_withheld_minor": 0,
                "net_minor": gross,
                "currency": batch.net.currency,
                "transaction_count": batch.count or len(member_rows),
            }
        )
        if batch.number not in known:
            counts.new_batches.append(batch.number)
    batch_newest = max((_at(r["settled_on"]) for r in batch_rows), default=batch_cursor)

    def store(session: Session) -> None:
        rows.extend(_chargeback_rows(session, scope.gateway_connection_id))
        # a transaction seen in a batch and in the export: the batch's row (with its
        # number) wins, whatever the order they were read in
        merged: dict[str, dict[str, Any]] = {}
        for row in rows:
            kept = merged.get(row["txn_id"])
            if kept is None or (row["batch_number"] and not kept["batch_number"]):
                merged[row["txn_id"]] = row
        new = _upsert(session, ReconTransaction, scope.id, "txn_id", merged.values())
        counts.add("transactions", len(merged), new)
        state = side_state(session, scope.id, "transactions")
        state.cursor = newest
        state.rows = (state.rows or 0) + new
        state.read_at = utcnow()
        state.last_error = None

        new_b = _upsert(session, ReconBatch, scope.id, "batch_number", batch_rows)
        counts.add("batches", len(batch_rows), new_b)
        stored_scope = session.get(ReconScope, scope.id)
        if stored_scope is not None:
            refresh_expected(session, stored_scope, [r["batch_number"] for r in batch_rows])
        b_state = side_state(session, scope.id, "batches")
        b_state.cursor = batch_newest
        b_state.rows = (b_state.rows or 0) + new_b
        b_state.read_at = utcnow()
        b_state.last_error = None
        b_state.state = {"known": sorted(known | {r["batch_number"] for r in batch_rows})[-2000:]}

    await writing(db, store)
    return counts


# -- the ledger ----------------------------------------------------------------------------


def receipt_row(
    payment: LedgerPayment, posting: PaymentPosting | None, ledger_id: int
) -> dict[str, Any]:
    """A ledger payment as a ``recon_receipts`` row, with our posting's key if we made it."""
    key = posting.idempotency_key if posting is not None else ""
    if not key and payment.reference.startswith("paytrace:"):
        key = payment.reference
    txn_id: str | None = None
    if posting is not None:
        txn_id = posting.transaction_id
    elif key.startswith("paytrace:"):
        txn_id = key.split(":")[1] or None
    kind = payment.kind if payment.kind in ("receipt", "refund") else "receipt"
    if posting is not None and posting.action == "reversal":
        kind = "reversal"
    reversed_ = payment.deleted or (posting is not None and posting.reversed_at is not None)
    return {
        "receipt_id": payment.id,
        "idempotency_key": key,
        "txn_id": txn_id,
        "kind": kind,
        "amount_minor": abs(payment.amount.minor),
        "currency": payment.amount.currency,
        "posted_on": payment.on,
        "reversed": reversed_,
        "customer_id": payment.customer_id,
        "reference": payment.reference[:200],
    }


def _reference_patterns(session: Session) -> tuple[re.Pattern[str], ...]:
    """The active rules spec's patterns that find a PayTrace transaction in a receipt's
    reference (the spec runs match with: ``rule_specs.active``)."""
    spec = rule_specs.compiled(rule_specs.active(session)).spec
    return tuple(
        re.compile(key.pattern)
        for key in spec.receipts.keys
        if key.column == "reference" and key.pattern is not None
    )


def is_card_receipt(
    payment: LedgerPayment,
    posting: PaymentPosting | None,
    patterns: tuple[re.Pattern[str], ...],
) -> bool:
    """Whether ``payment`` is card money the receipts side reconciles (module docstring)."""
    if posting is not None or payment.reference.startswith("paytrace:"):
        return True
    return any(pattern.search(payment.reference) for pattern in patterns)


async def read_ledger(
    db: Any, scope: ReconScope, ledger: LedgerHistory, *, full: bool = False
) -> ReadCounts:
    """Read the ledger's receipts and refunds of ``scope``."""
    counts = ReadCounts()
    cursor, _ = (
        (None, {}) if full else await in_db_thread(partial(_cursor, db, scope.id, "receipts"))
    )
    since = None if cursor is None else cursor - timedelta(days=RECEIPT_OVERLAP_DAYS)
    payments = [p async for p in ledger.payments(changed_since=since)]

    def store(session: Session) -> None:
        postings = {
            p.ledger_id: p
            for p in session.scalars(
                select(PaymentPosting).where(
                    PaymentPosting.ledger_connection_id == scope.ledger_connection_id,
                    PaymentPosting.ledger_id != "",
                )
            )
        }
        deleted = [p for p in payments if p.deleted]
        patterns = _reference_patterns(session)
        state = side_state(session, scope.id, "receipts")
        undoings = {p.id: r for p in payments if (r := undone_receipt(p.reference)) is not None}
        undone = set((state.state or {}).get("undone") or []) | set(undoings.values())
        rows = [
            receipt_row(p, postings.get(p.id), scope.ledger_connection_id)
            for p in payments
            if not p.deleted
            and p.id not in undoings
            and is_card_receipt(p, postings.get(p.id), patterns)
        ]
        new = _upsert(session, ReconReceipt, scope.id, "receipt_id", rows)
        _mark_reversed(session, scope.id, undone)
        # SBC deletes a receipt it reverses: keep it, marked reversed
        _mark_reversed(session, scope.id, {gone.id for gone in deleted})
        counts.add("receipts", len(payments), new)
        state.state = {**(state.state or {}), "undone": sorted(undone)}
        dated = [_at(r["posted_on"]) for r in rows if r["posted_on"] > date.min]
        state.cursor = max([*dated, *([cursor] if cursor else [])], default=None)
        state.rows = (state.rows or 0) + new
        state.read_at = utcnow()
        state.last_error = None

    await writing(db, store)
    return counts


def _mark_reversed(session: Session, scope_id: int, receipt_ids: set[str]) -> None:
    """Mark ``receipt_ids`` reversed (a later read of the receipt does not unmark it),
    stamped as read now: a run that kept the receipt as it was sees it changed."""
    ids = sorted(receipt_ids)
    now = utcnow()
    for start in range(0, len(ids), 500):
        for found in session.scalars(
            select(ReconReceipt).where(
                ReconReceipt.scope_id == scope_id,
                ReconReceipt.receipt_id.in_(ids[start : start + 500]),
                ReconReceipt.reversed.is_(False),
            )
        ):
            found.reversed = True
            found.read_at = now


def note_error(db: Any, scope_id: int, side: str, message: str) -> None:
    """Keep why a side could not be read (shown with the run); its rows stay as they were."""
    with db.transaction() as session:
        state = side_state(session, scope_id, side)
        state.last_error = message[:2000]


def connections_of(db: Any, scope: ReconScope) -> tuple[Connection, Connection]:
    with db.read() as session:
        gateway = session.get(Connection, scope.gateway_connection_id)
        ledger = session.get(Connection, scope.ledger_connection_id)
        assert gateway is not None  # foreign keys cascade
        assert ledger is not None
        session.expunge(gateway)
        session.expunge(ledger)
        return gateway, ledger
