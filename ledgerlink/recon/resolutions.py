"""What a person can do about a break; each action audited and kept in its history.

* **post the missing receipt** (``missing_receipt``): the PayTrace sale goes through the
  payments path — the inbox event read back from PayTrace, or the exception it sits in
  re-queued — and the ``PaymentProcessor`` posts it with its usual idempotency key
  ``paytrace:<txn>:sale``. Asking twice, or racing the poller, can never post twice:
  the inbox event is unique per transaction and the key is unique in the ledger.
* **reverse a duplicate** (``duplicate_receipt``): the extra receipt is reversed through
  the ledger port's ``reverse_posted_receipt`` (SBC deletes it; Sage 500 posts the entry
  that undoes it), with a key per break so a retry reverses once.
* **explain**: the break stays, marked explained, with the reason.
* **assign**: to a user, who then sees it as theirs.

A break dated in a closed period is refused any of these until the period is reopened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.blocking import in_db_thread, reading, writing
from ledgerlink.connectors.base import ReceiptReversals
from ledgerlink.domain.accounts import ReceiptReversal, RefundRequest
from ledgerlink.domain.money import Money
from ledgerlink.identity.principal import Principal
from ledgerlink.payments.inbox import accept
from ledgerlink.payments.jobs import drain, request_processing
from ledgerlink.payments.poller import event_of
from ledgerlink.payments.resolutions import ActionRefused, take_action
from ledgerlink.recon.periods import refuse_if_closed
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.recon.runs import default_matcher, run_scope
from ledgerlink.recon.sides import connections_of, undoing_reference
from ledgerlink.store import audit
from ledgerlink.store.models import User
from ledgerlink.store.payment_models import PaymentEvent, PaymentException
from ledgerlink.store.recon_models import ReconBreak, ReconBreakEvent, ReconReceipt, ReconScope
from ledgerlink.store.types import utcnow

ACTIONS = ("post_receipt", "reverse_duplicate", "explain", "assign")


@dataclass(frozen=True)
class Resolution:
    break_id: str
    action: str
    message: str


def _open_break(session: Session, scope_id: int, break_id: str, what: str) -> ReconBreak:
    found = session.scalar(
        select(ReconBreak).where(ReconBreak.scope_id == scope_id, ReconBreak.break_id == break_id)
    )
    if found is None:
        raise ReconRefused("break_id", f"There is no break {break_id} in this scope", missing=True)
    refuse_if_closed(session, scope_id, found.occurred_on, f"Break {break_id}")
    if what != "assign" and found.status != "open":
        raise ReconRefused(
            "break_id",
            f"Break {break_id} is already {found.status}"
            + (f" by {found.resolved_by}" if found.resolved_by else "")
            + "; reload the list",
        )
    return found


def _history(
    session: Session, found: ReconBreak, principal: Principal, action: str, note: str
) -> None:
    session.add(ReconBreakEvent(break_pk=found.id, actor=principal.actor, action=action, note=note))
    audit.record(
        session,
        actor=principal.actor,
        action=f"recon.break.{action}",
        entity_type="recon_break",
        entity_id=found.id,
        after={
            "scope_id": found.scope_id,
            "break_id": found.break_id,
            "type": found.type,
            "ids": list(found.ids),
            "note": note,
        },
    )


def _resolve(found: ReconBreak, principal: Principal, how: str, reason: str) -> None:
    found.status = "explained" if how == "explained" else "resolved"
    found.resolution = how
    found.reason = reason or None
    found.resolved_at = utcnow()
    found.resolved_by = principal.actor


def explain(
    session: Session, principal: Principal, scope_id: int, break_id: str, reason: str
) -> Resolution:
    reason = reason.strip()
    if not reason:
        raise ReconRefused("reason", "Say why the break is explained (it is kept with the break)")
    found = _open_break(session, scope_id, break_id, "explain")
    _resolve(found, principal, "explained", reason)
    _history(session, found, principal, "explained", reason)
    return Resolution(break_id, "explain", f"Break {break_id} is explained: {reason}")


def assign(
    session: Session, principal: Principal, scope_id: int, break_id: str, user_email: str
) -> Resolution:
    email = user_email.strip().lower()
    found = _open_break(session, scope_id, break_id, "assign")
    if email:
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            raise ReconRefused("user", f"There is no user {email}; give a user's e-mail address")
    found.assigned_to = email or None
    note = f"Assigned to {email}" if email else "Unassigned"
    _history(session, found, principal, "assigned", note)
    return Resolution(break_id, "assign", f"Break {break_id}: {note.lower()}")


def _sale_of(found: ReconBreak) -> str:
    if found.type != "missing_receipt" or not found.ids:
        raise ReconRefused(
            "action",
            f"Posting a receipt resolves a missing receipt; break {found.break_id} is "
            f"{found.type.replace('_', ' ')}",
        )
    return str(found.ids[0])


async def post_missing_receipt(
    runtime: Any,
    principal: Principal,
    scope_id: int,
    break_id: str,
    *,
    on_account: bool = False,
    invoice_number: str = "",
    note: str = "",
) -> Resolution:
    """Send the PayTrace sale of a ``missing_receipt`` break through the payments path.

    The sale is put in the inbox as PayTrace's own record (read back from the gateway)
    unless it is there already; if it sits in the exceptions queue it is re-queued (to
    the invoice named, or on account). The payments job then posts it once. Database
    work runs in the database threads, the gateway call on the event loop."""

    def look(session: Session) -> tuple[str, bool, ReconScope]:
        found = _open_break(session, scope_id, break_id, "post_receipt")
        txn_id = _sale_of(found)
        event = session.scalar(
            select(PaymentEvent).where(PaymentEvent.dedup_key == f"{txn_id}:sale")
        )
        scope = session.get(ReconScope, scope_id)
        assert scope is not None
        session.expunge(scope)
        return txn_id, event is not None, scope

    txn_id, in_inbox, scope = await reading(runtime.db, look)
    read_back = None
    if not in_inbox:
        gateway_conn, _ = await in_db_thread(partial(connections_of, runtime.db, scope))
        gateway = runtime.gateway_for(gateway_conn)
        try:
            read_back = event_of(await gateway.transaction(txn_id), gateway_conn.id)
        finally:
            await gateway.aclose()

    def record(session: Session) -> str:
        found = _open_break(session, scope_id, break_id, "post_receipt")
        if read_back is not None:
            accept(session, read_back)
            request_processing(runtime.jobs, session)
            how = "PayTrace's record of the sale was put in the payments inbox"
        else:
            how = _requeue(
                session, runtime.jobs, principal, txn_id, on_account, invoice_number, note
            )
        _resolve(found, principal, "posted_receipt", note.strip())
        text = f"Receipt for PayTrace sale {txn_id} sent to the payments path: {how}"
        _history(session, found, principal, "posted_receipt", text + (f" ({note})" if note else ""))
        return text

    return Resolution(break_id, "post_receipt", await writing(runtime.db, record))


def _requeue(
    session: Session,
    jobs: Any,
    principal: Principal,
    txn_id: str,
    on_account: bool,
    invoice_number: str,
    note: str,
) -> str:
    event = session.scalar(select(PaymentEvent).where(PaymentEvent.dedup_key == f"{txn_id}:sale"))
    assert event is not None
    if event.status == "posted":
        return "it was posted already (the next run clears the break)"
    if event.status in ("received", "processing"):
        request_processing(jobs, session)
        return "it is being posted"
    exception = session.scalar(
        select(PaymentException).where(
            PaymentException.event_id == event.id, PaymentException.status == "open"
        )
    )
    if exception is None:
        raise ReconRefused(
            "break_id",
            f"The sale {txn_id} was {event.status} in the payments queue"
            + (f" ({event.message})" if event.message else "")
            + "; act on it under Payments",
        )
    action = (
        "apply_to_invoice" if invoice_number.strip() else ("on_account" if on_account else "retry")
    )
    try:
        result = take_action(
            session,
            jobs,
            principal,
            exception.id,
            action,
            invoice_number=invoice_number,
            note=note,
        )
    except ActionRefused as refused:
        raise ReconRefused(refused.field, refused.message) from None
    return result.message


async def reverse_duplicate(
    runtime: Any,
    principal: Principal,
    scope_id: int,
    break_id: str,
    receipt_id: str,
    *,
    note: str = "",
) -> Resolution:
    """Reverse ``receipt_id``, one of the receipts a ``duplicate_receipt`` break names,
    through the ledger port; the other receipt stays. Database work runs in the database
    threads, the ledger call on the event loop."""

    def look(session: Session) -> tuple[ReconScope, ReconReceipt]:
        found = _open_break(session, scope_id, break_id, "reverse_duplicate")
        if found.type != "duplicate_receipt":
            raise ReconRefused(
                "action",
                f"Reversing resolves a receipt posted twice; break {break_id} is "
                f"{found.type.replace('_', ' ')}",
            )
        named = [*found.ids, *(found.other_ids if found.other_side == "receipts" else [])]
        if receipt_id not in named:
            raise ReconRefused(
                "receipt_id",
                f"Receipt {receipt_id} is not one of this break's ({', '.join(named)})",
            )
        receipt = session.scalar(
            select(ReconReceipt).where(
                ReconReceipt.scope_id == scope_id, ReconReceipt.receipt_id == receipt_id
            )
        )
        if receipt is None:
            raise ReconRefused("receipt_id", f"Receipt {receipt_id} was not read from the ledger")
        scope = session.get(ReconScope, scope_id)
        assert scope is not None
        session.expunge(scope)
        session.expunge(receipt)
        return scope, receipt

    scope, receipt = await reading(runtime.db, look)
    _, ledger_conn = await in_db_thread(partial(connections_of, runtime.db, scope))
    ledger = runtime.ledger_for(ledger_conn)
    try:
        reverser = ledger if isinstance(ledger, ReceiptReversals) else None
        if reverser is None:
            raise ReconRefused(
                "action",
                f"{ledger_conn.name} cannot take a receipt back through ledgerlink; reverse "
                f"receipt {receipt_id} in the ledger, then mark the break explained",
            )
        undoing = RefundRequest(
            idempotency_key=f"recon:{scope_id}:{break_id}:reversal"[:120],
            customer_id=receipt.customer_id,
            date=date.today(),
            amount=Money(receipt.amount_minor, receipt.currency),
            reference=undoing_reference(receipt_id),
        )
        await reverser.reverse_posted_receipt(ReceiptReversal(receipt_id, undoing))
    finally:
        await ledger.aclose()
    text = f"Receipt {receipt_id} reversed in {ledger_conn.name}"

    def record(session: Session) -> None:
        found = _open_break(session, scope_id, break_id, "reverse_duplicate")
        _resolve(found, principal, "reversed_duplicate", note.strip())
        _history(
            session, found, principal, "reversed_duplicate", text + (f" ({note})" if note else "")
        )

    await writing(runtime.db, record)
    return Resolution(break_id, "reverse_duplicate", text)


async def post_and_confirm(
    runtime: Any,
    principal: Principal,
    scope_id: int,
    break_id: str,
    *,
    trigger: str,
    on_account: bool = False,
    invoice_number: str = "",
    note: str = "",
) -> Resolution:
    """Post the missing receipt, let the payments path post it now (a drain: what the
    payments job would do a few seconds later), then rerun the scope so the break shows
    cleared — or open again, with the payments exception saying why."""
    done = await post_missing_receipt(
        runtime,
        principal,
        scope_id,
        break_id,
        on_account=on_account,
        invoice_number=invoice_number,
        note=note,
    )
    await drain(runtime, idle_seconds=0)
    await run_scope(
        runtime, scope_id, principal, trigger=trigger, matcher=default_matcher(runtime.db)
    )

    def still_open(session: Session) -> bool:
        found = session.scalar(
            select(ReconBreak).where(
                ReconBreak.scope_id == scope_id, ReconBreak.break_id == break_id
            )
        )
        return found is not None and found.status == "open"

    if await reading(runtime.db, still_open):
        return Resolution(
            break_id,
            "post_receipt",
            done.message + ". The receipt is not in the ledger yet: see the payments "
            "exceptions queue for why",
        )
    return Resolution(break_id, "post_receipt", done.message + ". The ledger now holds it")
