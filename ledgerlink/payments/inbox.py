"""The durable inbox: parse what a source sent, keep what ledgerlink needs, store it once.

Sources: PayTrace's silent post (form-encoded ``parmList`` of ``KEY~value|`` pairs, or the
same keys as separate fields), Standard Webhooks JSON (signed), the export poller and the
dispute report. Every one becomes an :class:`InboundEvent`; :func:`accept` stores it with
one statement whose unique ``dedup_key`` makes a repeat a no-op (counted, not stored).

Nothing that looks like a full card number is accepted anywhere in a payload: PayTrace
never sends one, so a source that does is misconfigured and is told so.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import update
from sqlalchemy.orm import Session

from ledgerlink.logs import luhn_valid
from ledgerlink.store.payment_models import PaymentEvent

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
_LONG_DIGITS = re.compile(r"\d[\d -]{11,22}\d")


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

    @property
    def dedup_key(self) -> str:
        return f"{self.transaction_id}:{self.kind}"


def _refuse_card_numbers(values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        for match in _LONG_DIGITS.finditer(str(value)):
            digits = re.sub(r"\D", "", match.group())
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                raise EventRefused(
                    name,
                    f"{name} holds what looks like a full card number; ledgerlink never accepts "
                    "card numbers (send the masked number only)",
                )


def _event(source: str, values: Mapping[str, str], kind_raw: str, **extra: Any) -> InboundEvent:
    _refuse_card_numbers(values)
    transaction_id = str(values.get("transaction_id") or "").strip()
    if not transaction_id.isdigit():
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
    """A PayTrace silent post. Unsigned: the event is stored unverified and read back from
    PayTrace (export by id) before anything is posted."""
    raw = (
        parse_parm_list(form["parmList"])
        if "parmList" in form
        else {k.upper(): v for k, v in form.items()}
    )
    values = {ours: raw[theirs] for theirs, ours in SILENT_POST_FIELDS.items() if theirs in raw}
    return _event("silent_post", values, raw.get("TRANXTYPE", ""), connection_id=connection_id)


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
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = (
        insert(PaymentEvent)
        .values(
            connection_id=event.connection_id,
            source=event.source,
            delivery_id=event.delivery_id,
            transaction_id=event.transaction_id,
            kind=event.kind,
            dedup_key=event.dedup_key,
            payload=event.payload,
            verified=event.verified,
            status="received",
            attempts=0,
            deliveries=1,
        )
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(PaymentEvent.id)
    )
    new_id = session.execute(statement).scalar()
    if new_id is not None:
        return int(new_id), True
    session.execute(
        update(PaymentEvent)
        .where(PaymentEvent.dedup_key == event.dedup_key)
        .values(deliveries=PaymentEvent.deliveries + 1)
    )
    return None, False


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
        self.db = db
        #: called in the storing transaction when a batch holds a new event (enqueues the
        #: drain in the same commit, so no stored event waits for a job that never comes)
        self.on_new = on_new
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: (
            asyncio.Queue[tuple[InboundEvent, asyncio.Future[tuple[int | None, bool]]]] | None
        ) = None
        self._task: asyncio.Task[None] | None = None

    async def submit(self, event: InboundEvent) -> tuple[int | None, bool]:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run(self._queue))
        future: asyncio.Future[tuple[int | None, bool]] = loop.create_future()
        self._queue.put_nowait((event, future))
        return await future

    async def _run(
        self, queue: asyncio.Queue[tuple[InboundEvent, asyncio.Future[tuple[int | None, bool]]]]
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    if loop.time() >= deadline:
                        break
                    await asyncio.sleep(0)
            try:
                results = await asyncio.to_thread(self._store, [event for event, _ in batch])
            except Exception as exc:  # every waiter learns the batch failed
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    def _store(self, events: list[InboundEvent]) -> list[tuple[int | None, bool]]:
        with self.db.transaction() as session:
            results = [accept(session, event) for event in events]
            if self.on_new is not None and any(new for _, new in results):
                self.on_new(session)
            return results
