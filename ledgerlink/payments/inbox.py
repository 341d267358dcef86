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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from ledgerlink.domain.card_numbers import contains_card_number
from ledgerlink.store.group_commit import GroupCommit
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
    postgresql = session.get_bind().dialect.name == "postgresql"
    new_id = session.execute(
        _INSERT_EVENT[postgresql],
        {
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
        },
    ).scalar()
    if new_id is not None:
        return int(new_id), True
    counted = session.execute(_COUNT_DELIVERY, {"key": event.dedup_key}).rowcount  # type: ignore[attr-defined]
    if counted != 1:  # OR IGNORE skipped it for another reason than a repeat
        raise RuntimeError(f"payment event {event.dedup_key} could not be stored")
    return None, False


def _insert_event(postgresql: bool) -> Any:
    """The insert that skips a repeat. Built once and run with parameters: SQLite's
    ``INSERT OR IGNORE`` is compiled once and cached; SQLAlchemy cannot cache an
    ``ON CONFLICT`` clause, so PostgreSQL's form is compiled per call."""
    table: Table = PaymentEvent.__table__  # type: ignore[assignment]
    if postgresql:
        from sqlalchemy.dialects.postgresql import insert

        return (
            insert(table).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(table.c.id)
        )
    from sqlalchemy import insert as core_insert

    return core_insert(table).prefix_with("OR IGNORE").returning(table.c.id)


_INSERT_EVENT = {False: _insert_event(False), True: _insert_event(True)}
_COUNT_DELIVERY = (
    update(PaymentEvent)
    .where(PaymentEvent.dedup_key == bindparam("key"))
    .values(deliveries=PaymentEvent.deliveries + 1)
)


class InboxWriter:
    """Group commit for the inbound endpoints: events that arrive together are stored in
    one transaction, and each caller is answered once its event is committed.

    One event per transaction spends most of its time on the transaction itself; under a
    burst (a settlement, a backlog of silent posts) batching keeps acceptance fast and
    still durable before the answer.
    """

    def __init__(
        self,
        db: Any,
        *,
        on_new: Callable[[Session], None] | None = None,
        max_batch: int = 256,
        max_wait: float = 0.002,
    ) -> None:
        #: called in the storing transaction when it holds a new event (enqueues the drain
        #: in the same commit, so no stored event waits for a job that never comes)
        self.on_new = on_new
        self._commits: GroupCommit[tuple[int | None, bool]] = GroupCommit(
            db, max_batch=max_batch, max_wait=max_wait
        )

    async def submit(self, event: InboundEvent) -> tuple[int | None, bool]:
        return await self._commits.run(lambda session: self._store(session, event))

    def _store(self, session: Session, event: InboundEvent) -> tuple[int | None, bool]:
        result = accept(session, event)
        to_process = result[1] and event.status == "received"
        if to_process and self.on_new is not None and not session.info.get("drain_requested"):
            self.on_new(session)
            session.info["drain_requested"] = True
        return result
