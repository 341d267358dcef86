"""The ledger contract: what payments, sync, members and reconciliation rely on from every
ledger adapter, checked against each kind's sandbox. A capability an adapter lacks fails
here, not in a member's payment.

Each test runs for Sage Business Cloud, Sage 500 and Test Books (the test-only kind)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import pytest

from ledgerlink.connectors import registry
from ledgerlink.connectors.base import (
    InvoiceFeed,
    InvoiceLines,
    Ledger,
    LedgerHistory,
    NewInvoices,
    PaymentLedger,
)
from ledgerlink.connectors.checks import check_connection
from ledgerlink.connectors.errors import NotFound, Rejected, UpstreamError
from ledgerlink.domain.accounts import (
    Address,
    Application,
    CustomerDraft,
    Invoice,
    ReceiptRequest,
    ReceiptReversal,
    RefundRequest,
)
from ledgerlink.domain.money import Money
from ledgerlink.members.customer_mapping import MEMBER_FIELDS
from tests.contract.harnesses import Built
from tests.support.testbooks import TESTBOOKS

T = TypeVar("T")
CENTS = 100  # what each test posts: 1.00, so any seeded open invoice can take it


def run(harness: Built, body: Callable[[Ledger], Awaitable[T]]) -> T:
    """``body`` with a fresh adapter, closed afterwards (as a job or a route would)."""

    async def scenario() -> T:
        ledger = harness.ledger()
        try:
            return await body(ledger)
        finally:
            await ledger.aclose()

    return asyncio.run(scenario())


async def open_invoice(ledger: Ledger) -> Invoice:
    async for invoice in ledger.invoices(open_only=True):
        if invoice.outstanding.minor >= 3 * CENTS:
            return invoice
    raise AssertionError(f"the {ledger.system} sandbox has no open invoice of 3.00 or more")


async def outstanding(ledger: Ledger, number: str) -> Money:
    found = await ledger.find_invoice(number)
    assert found is not None
    return found.outstanding


def _key(what: str) -> str:
    return f"contract:{what}:{secrets.token_hex(6)}"


def _number() -> str:
    return f"CT{secrets.randbelow(10**6):06d}"


# -- the kind itself ------------------------------------------------------------------------------


def test_the_kind_is_a_registered_ledger_with_every_capability(harness: Built) -> None:
    ledger = harness.ledger()
    descriptor = registry.descriptor(ledger.system)
    assert descriptor.role == "ledger"
    assert descriptor.kind in registry.ledger_kinds()
    assert descriptor.label
    assert descriptor.customer_noun
    # how its customers read to the member and card-profile specs
    assert descriptor.customer_record is not None
    assert set(descriptor.customer_record.fields) == set(MEMBER_FIELDS) | {"name"}
    # the ports callers use, checked at run time: history, receipts, reversals
    assert isinstance(ledger, Ledger)
    assert isinstance(ledger, LedgerHistory)
    assert isinstance(ledger, PaymentLedger)
    asyncio.run(ledger.aclose())


def test_a_test_only_kind_needs_no_production_file() -> None:
    """Test Books is registered from the tests alone, and is then a ledger kind like the
    built-in ones; outside the block it is gone."""
    assert TESTBOOKS.kind not in registry.ledger_kinds()
    with registry.registered(TESTBOOKS):
        assert TESTBOOKS.kind in registry.ledger_kinds()
        assert set(registry.ledger_kinds()) >= {"sbc", "sage500", "testbooks"}
    assert TESTBOOKS.kind not in registry.ledger_kinds()


# -- customers ------------------------------------------------------------------------------------


def test_customers_list_find_create_once_and_update(harness: Built) -> None:
    async def body(ledger: Ledger) -> None:
        listed = [c async for c in ledger.customers()]
        assert listed, "the sandbox is seeded with customers"
        first = listed[0]
        assert first.system == ledger.system
        assert first.id
        assert first.number
        found = await ledger.find_customer(first.number)
        assert found is not None
        assert found.id == first.id
        assert (await ledger.get_customer(first.id)).number == first.number
        assert await ledger.find_customer("NO-SUCH-1") is None

        before = datetime.now(UTC) - timedelta(seconds=5)
        number, key = _number(), _key("customer")
        draft = CustomerDraft(
            number,
            f"Contract {number}",
            email=f"{number.lower()}@example.org",
            address=Address(
                line1="1 Main St", city="Springfield", postal_code="12345", country="US"
            ),
            currency=harness.traits.currency,
        )
        created = await ledger.create_customer(draft, key)
        assert created.number == number
        assert created.name == draft.name
        again = await ledger.create_customer(draft, key)
        assert again.id == created.id, "creating with the same key twice makes one customer"
        found = await ledger.find_customer(number)
        assert found is not None
        assert found.id == created.id
        changed = [c.id async for c in ledger.customers(changed_since=before)]
        assert created.id in changed
        assert first.id not in changed or first.updated_at is None or (first.updated_at >= before)

        renamed = CustomerDraft(
            number,
            f"Renamed {number}",
            email=f"new-{number.lower()}@example.org",
            address=draft.address,
            currency=draft.currency,
        )
        await ledger.update_customer(created.id, renamed)
        now = await ledger.get_customer(created.id)
        assert now.name == renamed.name
        assert now.email == renamed.email

    run(harness, body)


# -- invoices -------------------------------------------------------------------------------------


def test_open_invoices_are_found_by_number_and_customer(harness: Built) -> None:
    async def body(ledger: Ledger) -> None:
        invoice = await open_invoice(ledger)
        assert invoice.system == ledger.system
        assert invoice.outstanding.currency == harness.traits.currency
        assert invoice.total >= invoice.outstanding
        found = await ledger.find_invoice(invoice.number)
        assert found is not None
        assert found.id == invoice.id
        theirs = [i.id async for i in ledger.invoices(customer_id=invoice.customer_id)]
        assert invoice.id in theirs
        assert await ledger.find_invoice("NO-SUCH-INVOICE-1") is None

    run(harness, body)


def test_new_invoices_are_read_from_the_ledgers_own_mark(harness: Built) -> None:
    """Payment requests for new invoices read them by the ledger's own creation order: a
    first read only marks where to start; an invoice raised after it is read, open, with
    its amount; the overlap of a later read never reaches back before the first mark."""

    async def body(ledger: Ledger) -> None:
        assert isinstance(ledger, InvoiceFeed)
        start = await ledger.invoices_created_after(None)
        assert start.invoices == ()
        customer = (await open_invoice(ledger)).customer_id
        number = await harness.new_invoice(ledger, customer, "40.00")

        def fresh(page: NewInvoices) -> list[str]:
            return [i.number for i in page.invoices if i.id not in start.at_mark]

        page = await ledger.invoices_created_after(start.mark, floor=start.mark)
        assert fresh(page) == [number]
        [invoice] = [i for i in page.invoices if i.number == number]
        assert invoice.customer_id == customer
        assert invoice.outstanding == Money(4_000, harness.traits.currency)
        assert invoice.is_open
        again = await ledger.invoices_created_after(page.mark, floor=start.mark)
        assert set(fresh(again)) <= {number}, "nothing from before the first mark"

    run(harness, body)


def test_an_invoices_lines_are_read_as_the_ledger_keeps_them(harness: Built) -> None:
    """Level 3 card data is built from these: the invoice they belong to, and lines whose
    amounts and tax are in the invoice's currency and add up to what the ledger recorded."""

    async def body(ledger: Ledger) -> None:
        assert isinstance(ledger, InvoiceLines)
        invoice = await open_invoice(ledger)
        detail = await ledger.invoice_lines(invoice.id)
        assert detail.invoice_id == invoice.id
        assert detail.number == invoice.number
        assert detail.total == invoice.total
        for position, line in enumerate(detail.lines, start=1):
            assert line.position == position
            assert line.amount.currency == invoice.total.currency
            assert line.quantity > 0
        if detail.lines:
            lines = sum((line.amount for line in detail.lines), Money.zero(invoice.total.currency))
            assert lines + detail.tax == detail.total
        with pytest.raises(NotFound):
            await ledger.invoice_lines(harness.traits.unknown_invoice_id)

    run(harness, body)


# -- receipts, history, reversals -----------------------------------------------------------------


def test_a_receipt_posts_once_and_shows_in_the_history(harness: Built) -> None:
    async def body(ledger: Ledger) -> None:
        invoice = await open_invoice(ledger)
        amount = Money(CENTS, invoice.outstanding.currency)
        before = await outstanding(ledger, invoice.number)
        since = datetime.now(UTC) - timedelta(seconds=5)
        receipt = ReceiptRequest(
            _key("receipt"),
            invoice.customer_id,
            date.today(),
            amount,
            (Application(invoice.id, amount),),
            reference="contract",
        )

        posted = await ledger.post_receipt(receipt)
        assert not posted.replayed
        assert posted.amount == amount
        assert posted.applied == amount
        assert await outstanding(ledger, invoice.number) == before - amount

        replay = await ledger.post_receipt(receipt)
        assert replay.replayed, "the same key again is a replay, not a second receipt"
        assert replay.id == posted.id
        assert await outstanding(ledger, invoice.number) == before - amount

        found = await ledger.find_receipt(receipt.idempotency_key)
        if harness.traits.finds_receipts:
            assert found is not None
            assert found.id == posted.id
        else:
            assert found is None  # learnt by posting again with the key, as above
        assert await ledger.find_receipt(_key("never-posted")) is None

        history = [p async for p in ledger.payments(changed_since=since)]
        mine = [p for p in history if p.id == posted.id]
        assert len(mine) == 1, "the receipt is in the ledger's history once"
        assert mine[0].kind == "receipt"
        assert mine[0].amount == amount
        assert mine[0].customer_id == invoice.customer_id
        assert dict(mine[0].applied).get(invoice.id) == amount

    run(harness, body)


def test_a_reversed_receipt_reopens_its_invoice_once(harness: Built) -> None:
    async def body(ledger: Ledger) -> None:
        assert isinstance(ledger, PaymentLedger)
        invoice = await open_invoice(ledger)
        amount = Money(CENTS, invoice.outstanding.currency)
        before = await outstanding(ledger, invoice.number)
        since = datetime.now(UTC) - timedelta(seconds=5)
        posted = await ledger.post_receipt(
            ReceiptRequest(
                _key("receipt"),
                invoice.customer_id,
                date.today(),
                amount,
                (Application(invoice.id, amount),),
            )
        )
        reversal = ReceiptReversal(
            posted.id,
            RefundRequest(
                _key("reversal"),
                invoice.customer_id,
                date.today(),
                amount,
                (Application(invoice.id, amount),),
                chargeback=True,
            ),
        )

        await ledger.reverse_posted_receipt(reversal)
        assert await outstanding(ledger, invoice.number) == before
        await ledger.reverse_posted_receipt(reversal)  # a retry after a lost reply
        assert await outstanding(ledger, invoice.number) == before

        history = [p async for p in ledger.payments(changed_since=since)]
        deleted = any(p.id == posted.id and p.deleted for p in history)
        undone = [p for p in history if p.kind == "refund" and p.amount == amount]
        assert deleted or len(undone) == 1, "the history shows the reversal once"

    run(harness, body)


def test_a_refund_on_account_posts_once(harness: Built) -> None:
    async def body(ledger: Ledger) -> None:
        invoice = await open_invoice(ledger)
        amount = Money(CENTS, invoice.outstanding.currency)
        # money on the customer's account first, then paid back
        await ledger.post_receipt(
            ReceiptRequest(_key("on-account"), invoice.customer_id, date.today(), amount)
        )
        refund = RefundRequest(_key("refund"), invoice.customer_id, date.today(), amount)
        posted = await ledger.post_refund(refund)
        assert posted.amount == amount
        replay = await ledger.post_refund(refund)
        assert replay.id == posted.id
        assert replay.replayed

    run(harness, body)


# -- periods and currencies -----------------------------------------------------------------------


def test_a_closed_period_refuses_a_post(harness: Built) -> None:
    async def body(ledger: Ledger) -> None:
        lockdown = await ledger.lockdown_date()
        if not harness.traits.closes_periods:
            assert lockdown is None  # refused per posting by the ledger's own import
            return
        assert lockdown is not None
        invoice = await open_invoice(ledger)
        amount = Money(CENTS, invoice.outstanding.currency)
        before = await outstanding(ledger, invoice.number)
        with pytest.raises(Rejected) as refused:
            await ledger.post_receipt(
                ReceiptRequest(
                    _key("locked"),
                    invoice.customer_id,
                    lockdown,
                    amount,
                    (Application(invoice.id, amount),),
                )
            )
        assert "lock" in refused.value.message.lower()
        assert await outstanding(ledger, invoice.number) == before

    run(harness, body)


def test_currency_digits_are_the_ledgers(harness: Built) -> None:
    async def body(ledger: Ledger) -> None:
        digits = await ledger.currency_digits()
        assert digits[harness.traits.currency] == 2
        assert all(isinstance(d, int) and 0 <= d <= 4 for d in digits.values())

    run(harness, body)


# -- errors ---------------------------------------------------------------------------------------


def test_the_connection_check_passes_and_bad_credentials_are_named(harness: Built) -> None:
    runtime = harness.runtime
    good = asyncio.run(check_connection(runtime, harness.ledger_with_bad_credentials()))
    assert not all(c.ok for c in good)
    failed = [c for c in good if not c.ok]
    assert failed[0].name in ("credentials", "reachable", "configuration")
    assert failed[0].detail
    assert "Traceback" not in failed[0].detail

    async def body(ledger: Ledger) -> None:
        checks = await ledger.check()
        assert checks
        assert all(c.ok for c in checks), checks

    run(harness, body)


def test_upstream_errors_are_of_the_upstream_family(harness: Built) -> None:
    async def body(ledger: Ledger) -> None:
        with pytest.raises(NotFound):
            await ledger.get_customer(harness.traits.unknown_customer_id)
        invoice = await open_invoice(ledger)
        amount = Money(CENTS, invoice.outstanding.currency)
        with pytest.raises(UpstreamError):
            await ledger.post_receipt(
                ReceiptRequest(
                    _key("nobody"),
                    harness.traits.unknown_customer_id,
                    date.today(),
                    amount,
                    (Application(invoice.id, amount),),
                )
            )

    run(harness, body)
