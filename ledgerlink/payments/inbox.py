"""The durable inbox: parse what a source sent, keep what ledgerlink needs, store it once.

Sources: PayTrace's silent post (form-encoded ``parmList`` of ``KEY~value|`` pairs, or the
same keys as separate fields), Standard Webhooks JSON (signed), the export poller and the
dispute report. Every one becomes an :class:`InboundEvent`; :func:`accept` stores it with
one statement whose unique ``dedup_key`` makes a repeat a no-op (counted, not stored).

Nothing that looks like a full card number is accepted anywhere in a payload: PayTrace
never sends one, so a source that does is misconfigured and is told so.

**An unsigned push is a hint, never a fact.** A silent post is stored unverified: what is
posted for it is PayTrace's own record, read back by id. A chargeback or won dispute is
never taken from one at all (PayTrace's API cannot confirm them; they come from the dispute
report an authorised user imports, or a signed webhook): such a post is stored as
``unverified`` and never processed. A hint is kept apart from the events it speaks of — its key is
``hint:<transaction>:<kind>`` — so it can never block, change or pre-empt the real event:
processing a hint reads the transaction from PayTrace and puts *PayTrace's record* into the
inbox under the real key (as the poller would), and a hint PayTrace does not bear out is
flagged ``unverified`` without opening an exception.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from sqlalchemy import Connection, Dialect, Table, bindparam, update
from sqlalchemy.orm import Session

from ledgerlink.domain.card_numbers import contains_card_number
from ledgerlink.store.group_commit import BatchCommit
from ledgerlink.store.payment_models import PaymentEvent
from ledgerlink.store.types import utcnow

#: PayTrace transaction types (silent post TRANXTYPE, export transaction_type) → our kinds.
KINDS: Final = {
    "SALE": "sale",
    "FORCE": "sale",
    "AUTHORIZATION": "authorization",
    "CAPTURE": "capture",
    "REFUND": "refund",
    "VOID": "void",
    "CHARGEBACK": "chargeback",
    "DISPUTE_WON": "dispute_won",
}
#: Only these fields are kept: what posting needs, nothing personal beyond the e-mail.
KEPT: Final = (
    "transaction_id",
    "amount",
    "invoice_id",
    "customer_id",
    "response_code",
    "response",
    "approval_code",
    "status",
    "original_transaction_id",
    "card_type",
    "masked_card",
    "email",
    "currency",
)
SILENT_POST_FIELDS: Final = {
    "TRANSACTIONID": "transaction_id",
    "AMOUNT": "amount",
    "ORDERID": "invoice_id",
    "CUSTID": "customer_id",
    "RESPONSECODE": "response_code",
    "RESPONSE": "response",
    "APPCODE": "approval_code",
    "STATUS": "status",
    "ORIGINALTRANSACTIONID": "original_transaction_id",
    "CARDTYPE": "card_type",
    "MASKEDCARD": "masked_card",
    "EMAIL": "email",
}
#: Kinds PayTrace's API cannot confirm: never taken from an unsigned push.
DISPUTE_KINDS: Final = ("chargeback", "dispute_won")
#: Sources that are no more than a hint (anyone can send them).
UNSIGNED_SOURCES: Final = ("silent_post",)
#: The longest value a push may give for a kept field (PayTrace's own are far shorter).
MAX_VALUE_LENGTH: Final = 255


class EventRefused(ValueError):
    """The delivery cannot be accepted; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class InboundEvent:
    source: str
    transaction_id: str
    kind: str
    payload: dict[str, str] = field(default_factory=dict)
    verified: bool = False
    delivery_id: str = ""
    connection_id: int | None = None
    #: ``received`` (to be processed) or ``unverified`` (a hint kept apart, never posted)
    status: str = "received"
    message: str | None = None

    @property
    def dedup_key(self) -> str:
        real = f"{self.transaction_id}:{self.kind}"
        return f"hint:{real}" if self.source in UNSIGNED_SOURCES else real


def _refuse_card_numbers(values: Mapping[str, Any]) -> None:
    # All values are searched at once, one per line: a card number never spans a line
    # break (its separators exclude them), so the joined text holds one exactly when some
    # value does; only then is each value searched, to name it.
    if not contains_card_number("\n".join(str(value) for value in values.values())):
        return
    for name, value in values.items():
        if contains_card_number(str(value)):
            raise EventRefused(
                name,
                f"{name} holds what looks like a full card number; ledgerlink never accepts "
                "card numbers (send the masked number only)",
            )


def _event(source: str, values: Mapping[str, str], kind_raw: str, **extra: Any) -> InboundEvent:
    _refuse_card_numbers(values)
    transaction_id = str(values.get("transaction_id") or "").strip()
    if not (transaction_id.isascii() and transaction_id.isdigit()) or len(transaction_id) > 20:
        raise EventRefused(
            "transaction_id", f"transaction_id {transaction_id!r} is missing or not a PayTrace id"
        )
    kind = KINDS.get(kind_raw.strip().upper().replace(" ", "_"))
    if kind is None:
        raise EventRefused(
            "type", f"transaction type {kind_raw!r} is not one of {', '.join(sorted(KINDS))}"
        )
    payload = {
        name: str(values[name]).strip() for name in KEPT if values.get(name) not in (None, "")
    }
    for name, value in payload.items():
        if len(value) > MAX_VALUE_LENGTH:
            raise EventRefused(
                name,
                f"{name} has {len(value)} characters; PayTrace's fields have at most "
                f"{MAX_VALUE_LENGTH}, so this did not come from PayTrace",
            )
    return InboundEvent(source, transaction_id, kind, payload, **extra)


def parse_parm_list(text: str) -> dict[str, str]:
    """``KEY~value|KEY~value|`` → {KEY: value} (a value may contain ``~``, not ``|``)."""
    pairs: dict[str, str] = {}
    for part in text.split("|"):
        if not part.strip():
            continue
        key, sep, value = part.partition("~")
        if not sep:
            raise EventRefused("parmList", f"parmList entry {part!r} is not KEY~value")
        pairs[key.strip().upper()] = value
    return pairs


def from_silent_post(form: Mapping[str, str], connection_id: int | None = None) -> InboundEvent:
    """A PayTrace silent post. Unsigned, so only a hint: it is stored apart and processing
    it reads the transaction back from PayTrace (export by id); a chargeback or won dispute
    is stored ``unverified`` and never processed."""
    raw = (
        parse_parm_list(form["parmList"])
        if "parmList" in form
        else {k.upper(): v for k, v in form.items()}
    )
    values = {ours: raw[theirs] for theirs, ours in SILENT_POST_FIELDS.items() if theirs in raw}
    event = _event("silent_post", values, raw.get("TRANXTYPE", ""), connection_id=connection_id)
    if event.kind in DISPUTE_KINDS:
        return replace(
            event,
            status="unverified",
            message=(
                f"A silent post said transaction {event.transaction_id} had a {event.kind}; "
                "chargebacks and won disputes are taken only from the dispute report or a "
                "signed webhook, so nothing was changed"
            ),
        )
    return event


def from_webhook(body: Any, delivery_id: str, connection_id: int | None = None) -> InboundEvent:
    """A Standard Webhooks delivery (signature already checked): ``{"type":
    "payment.sale", "data": {"transaction_id": ..., "amount": ..., ...}}``."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise EventRefused("data", 'the body must be {"type": "payment.<kind>", "data": {...}}')
    kind = str(body.get("type") or "").removeprefix("payment.")
    data = {str(k): "" if v is None else str(v) for k, v in body["data"].items()}
    return _event(
        "webhook", data, kind, verified=True, delivery_id=delivery_id, connection_id=connection_id
    )


def accept(session: Session, event: InboundEvent) -> tuple[int | None, bool]:
    """Store ``event`` once: (its id, True) when new; (None, False) for a repeat, whose
    delivery is counted on the stored event."""
    return accept_many(session, [event])[0]


def accept_many(session: Session, events: list[InboundEvent]) -> list[tuple[int | None, bool]]:
    """Store each of ``events`` once, with one multi-row insert (a burst's events cost one
    statement, not one each): per event, (its id, True) when new, (None, False) for a
    repeat — of a stored event or of one earlier in ``events`` — whose delivery is counted
    on the stored event."""
    if not events:
        return []
    connection = session.connection()
    rows = [_row(event) for event in events]
    if connection.dialect.name == "sqlite":
        inserted = _insert_sqlite(connection, rows)
    else:
        inserted = dict(connection.execute(_INSERT_EVENTS[True], rows).tuples().all())
    results: list[tuple[int | None, bool]] = []
    for event in events:
        new_id = inserted.pop(event.dedup_key, None)
        if new_id is not None:
            results.append((int(new_id), True))
            continue
        counted = connection.execute(_COUNT_DELIVERY, {"key": event.dedup_key}).rowcount
        if counted != 1:  # OR IGNORE skipped it for another reason than a repeat
            raise RuntimeError(f"payment event {event.dedup_key} could not be stored")
        results.append((None, False))
    return results


def _row(event: InboundEvent) -> dict[str, Any]:
    return {
        "connection_id": event.connection_id,
        "source": event.source,
        "delivery_id": event.delivery_id,
        "transaction_id": event.transaction_id,
        "kind": event.kind,
        "dedup_key": event.dedup_key,
        "payload": event.payload,
        "verified": event.verified,
        "status": event.status,
        "message": event.message,
        "attempts": 0,
        "deliveries": 1,
        "received_at": utcnow(),
    }


#: The columns an inbound event is stored with, in the SQLite insert's order.
_COLUMNS: Final = (
    "connection_id",
    "source",
    "delivery_id",
    "transaction_id",
    "kind",
    "dedup_key",
    "payload",
    "verified",
    "status",
    "message",
    "attempts",
    "deliveries",
    "received_at",
)
#: Rows per SQLite statement (13 parameters each: well inside SQLite's variable limit).
_SQLITE_ROWS: Final = 64


def _insert_sqlite(connection: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """SQLite's multi-row ``INSERT OR IGNORE … RETURNING`` on the connection's own cursor,
    in its transaction: {dedup_key: id} of the rows stored. SQLAlchemy's
    insert-many-values costs several times what SQLite does for a burst's rows; the values
    go through the columns' own bind processors, so they are stored exactly as SQLAlchemy
    stores them (JSON text, the timestamp's text form)."""
    processors = _sqlite_processors(connection.dialect)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    inserted: dict[str, int] = {}
    try:
        for start in range(0, len(rows), _SQLITE_ROWS):
            chunk = rows[start : start + _SQLITE_ROWS]
            values = [
                value if process is None else process(value)
                for row in chunk
                for value, process in zip((row[name] for name in _COLUMNS), processors, strict=True)
            ]
            cursor.execute(_sqlite_insert(len(chunk)), values)
            inserted.update(cursor.fetchall())
    finally:
        cursor.close()
    return inserted


@functools.lru_cache(maxsize=8)  # one dialect an engine: a process has few
def _sqlite_processors(dialect: Dialect) -> tuple[Callable[[Any], Any] | None, ...]:
    columns = PaymentEvent.__table__.c
    return tuple(
        columns[name].type.dialect_impl(dialect).bind_processor(dialect) for name in _COLUMNS
    )


@functools.cache
def _sqlite_insert(rows: int) -> str:
    row = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
    columns = ", ".join(_COLUMNS)
    values = ", ".join([row] * rows)
    return (
        f"INSERT OR IGNORE INTO payment_events ({columns}) VALUES {values} RETURNING dedup_key, id"  # noqa: S608 - names are ours
    )


def _insert_events(postgresql: bool) -> Any:
    """The insert that skips a repeat, answering (dedup_key, id) for each row it stored
    (SQLAlchemy sends a list of rows as one multi-row statement). Built once: SQLite's
    ``INSERT OR IGNORE`` is compiled once and cached; SQLAlchemy cannot cache an
    ``ON CONFLICT`` clause, so PostgreSQL's form is compiled per call."""
    table: Table = PaymentEvent.__table__  # type: ignore[assignment]
    if postgresql:
        from sqlalchemy.dialects.postgresql import insert

        return (
            insert(table)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(table.c.dedup_key, table.c.id)
        )
    from sqlalchemy import insert as core_insert

    return core_insert(table).prefix_with("OR IGNORE").returning(table.c.dedup_key, table.c.id)


_INSERT_EVENTS = {False: _insert_events(False), True: _insert_events(True)}
_COUNT_DELIVERY = (
    update(PaymentEvent)
    .where(PaymentEvent.dedup_key == bindparam("key"))
    .values(deliveries=PaymentEvent.deliveries + 1)
)


class InboxWriter:
    """Group commit for the inbound endpoints: events that arrive together are stored in
    one transaction, with one statement, and each caller is answered once its event is
    committed.

    One event per transaction spends most of its time on the transaction itself; under a
    burst (a settlement, a backlog of silent posts) batching keeps acceptance fast and
    still durable before the answer. No window is waited for: the events that arrived
    while the last batch was committing make the next one.
    """

    def __init__(
        self,
        db: Any,
        *,
        on_new: Callable[[Session], None] | None = None,
        max_batch: int = 256,
        max_wait: float = 0.0,
    ) -> None:
        #: called in the storing transaction when it holds a new event (enqueues the drain
        #: in the same commit, so no stored event waits for a job that never comes)
        self.on_new = on_new
        self._commits: BatchCommit[InboundEvent, tuple[int | None, bool]] = BatchCommit(
            db, self._store, max_batch=max_batch, max_wait=max_wait, hold_connection=True
        )

    async def submit(self, event: InboundEvent) -> tuple[int | None, bool]:
        return await self._commits.submit(event)

    def _store(self, session: Session, events: list[InboundEvent]) -> list[tuple[int | None, bool]]:
        results = accept_many(session, events)
        to_process = any(
            new and event.status == "received"
            for event, (_, new) in zip(events, results, strict=True)
        )
        if to_process and self.on_new is not None and not session.info.get("drain_requested"):
            self.on_new(session)
            session.info["drain_requested"] = True
        return results
