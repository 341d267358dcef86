"""The Sage 500 connector against the Sage 500 simulator: a real database (SQLite and
PostgreSQL) and the simulator's import procedure running in the background, as at a site."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, update

from ledgerlink.connectors.errors import Misconfigured, Rejected, Unavailable
from ledgerlink.connectors.sage500.ledger import Sage500Ledger, Sage500Options
from ledgerlink.connectors.sage500.tables import StgCashRcpt, tarCustomer, tarCustPmt, tarInvoice
from ledgerlink.domain.accounts import (
    Address,
    Application,
    CustomerDraft,
    LedgerPayment,
    ReceiptRequest,
    RefundRequest,
)
from ledgerlink.domain.money import Money
from ledgerlink.sandbox import sage500
from ledgerlink.sandbox.faults import FaultInjector, FaultPlan

OPTIONS = Sage500Options(
    company_id="SOA",
    receipt_gl_account="1010-00",
    refund_gl_account="1015-00",
    import_wait_seconds=10,
)


class Erp:
    """The simulated ERP with its import processor running in a thread."""

    def __init__(
        self, engine: Engine, config: sage500.Sage500Config, faults: FaultInjector
    ) -> None:
        self.engine = engine
        self.faults = faults
        self.processor = sage500.ImportProcessor(engine, config, faults=faults)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.processor.run_forever, args=(self._stop,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


@pytest.fixture
def erp(db_url: str, tmp_path: Path) -> Iterator[Erp]:
    engine = create_engine(db_url)
    config = sage500.Sage500Config(
        seed_people=60,
        import_interval_seconds=0.02,
        inbox_dir=str(tmp_path / "inbox"),
        outbox_dir=str(tmp_path / "outbox"),
    )
    sage500.create_schema(engine)
    sage500.seed(engine, config)
    running = Erp(engine, config, FaultInjector())
    running.start()
    yield running
    running.stop()
    engine.dispose()


def _ledger(erp: Erp, **changes: object) -> Sage500Ledger:
    return Sage500Ledger(erp.engine, replace(OPTIONS, **changes), owns_engine=False)  # type: ignore[arg-type]


def _open_invoice(erp: Erp, customer_key: int) -> tuple[str, Decimal]:
    with erp.engine.connect() as conn:
        row = conn.execute(
            select(tarInvoice.c.InvcKey, tarInvoice.c.Balance)
            .where(tarInvoice.c.CustKey == customer_key, tarInvoice.c.Balance > 0)
            .order_by(tarInvoice.c.InvcKey)
        ).first()
    assert row is not None
    return str(row.InvcKey), Decimal(str(row.Balance)).quantize(Decimal("0.01"))


def _receipt(
    key: str, customer: str, amount: str, *applications: tuple[str, str]
) -> ReceiptRequest:
    return ReceiptRequest(
        idempotency_key=key,
        customer_id=customer,
        date=date(2026, 11, 20),
        amount=Money.parse(amount, "USD"),
        applications=tuple(Application(i, Money.parse(a, "USD")) for i, a in applications),
        reference=f"PayTrace {key}",
    )


def _payments(erp: Erp) -> int:
    with erp.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(tarCustPmt)) or 0)


def test_check_reports_each_step(erp: Erp) -> None:
    results = asyncio.run(_ledger(erp).check())
    assert [(r.name, r.ok) for r in results] == [
        ("reachable", True),
        ("permissions", True),
        ("company", True),
        ("gl account", True),
        ("gl account", True),
        ("staging", True),
    ]
    wrong = asyncio.run(_ledger(erp, company_id="XYZ").check())
    assert wrong[-1].name == "company"
    assert not wrong[-1].ok
    assert "SOA" in wrong[-1].detail


def test_reads_customers_and_open_invoices(erp: Erp) -> None:
    async def read() -> tuple[list[str], list[str]]:
        ledger = _ledger(erp)
        customers = [c.number async for c in ledger.customers()]
        invoices = [i.customer_id async for i in ledger.invoices(customer_id="3")]
        return customers, invoices

    customers, invoices = asyncio.run(read())
    assert len(customers) == 60
    assert "C00001" in customers
    assert invoices
    assert set(invoices) == {"3"}


def test_a_receipt_posts_once_and_a_repeat_is_replayed(erp: Erp) -> None:
    invoice, balance = _open_invoice(erp, 1)
    request = _receipt("paytrace:9001:sale", "1", str(balance), (invoice, str(balance)))
    first = asyncio.run(_ledger(erp).post_receipt(request))
    again = asyncio.run(_ledger(erp).post_receipt(request))
    assert (first.replayed, again.replayed) == (False, True)
    assert first.id == again.id
    assert first.applied == Money.parse(str(balance), "USD")
    assert _payments(erp) == 1
    with erp.engine.connect() as conn:
        assert (
            conn.scalar(select(tarInvoice.c.Balance).where(tarInvoice.c.InvcKey == int(invoice)))
            == 0
        )
    found = asyncio.run(_ledger(erp).find_receipt("paytrace:9001:sale"))
    assert found is not None
    assert found.id == first.id
    assert found.amount == first.amount


def test_a_refund_reopens_the_invoice(erp: Erp) -> None:
    invoice, balance = _open_invoice(erp, 2)
    ledger = _ledger(erp)
    asyncio.run(ledger.post_receipt(_receipt("r:sale", "2", str(balance), (invoice, str(balance)))))
    refund = RefundRequest(
        idempotency_key="r:refund",
        customer_id="2",
        date=date(2026, 11, 21),
        amount=Money.parse(str(balance), "USD"),
        applications=(Application(invoice, Money.parse(str(balance), "USD")),),
    )
    posted = asyncio.run(ledger.post_refund(refund))
    assert posted.amount == Money.parse(str(balance), "USD")
    with erp.engine.connect() as conn:
        assert (
            Decimal(
                str(
                    conn.scalar(
                        select(tarInvoice.c.Balance).where(tarInvoice.c.InvcKey == int(invoice))
                    )
                )
            )
            == balance
        )


def test_a_refused_row_says_why_and_a_retry_after_the_fix_posts(erp: Erp) -> None:
    with erp.engine.begin() as conn:
        conn.execute(update(tarCustomer).where(tarCustomer.c.CustKey == 7).values(Status=2))
    request = _receipt("refused:1", "7", "25.00")
    with pytest.raises(Rejected) as refused:
        asyncio.run(_ledger(erp).post_receipt(request))
    assert "inactive" in refused.value.message
    assert "Sage 500's import refused the receipt" in refused.value.message
    with erp.engine.begin() as conn:
        conn.execute(update(tarCustomer).where(tarCustomer.c.CustKey == 7).values(Status=1))
    posted = asyncio.run(_ledger(erp).post_receipt(request))
    assert not posted.replayed
    assert _payments(erp) == 1


def test_an_import_that_does_not_run_is_reported_and_posts_once_later(erp: Erp) -> None:
    erp.stop()
    request = _receipt("late:1", "4", "12.00")
    with pytest.raises(Unavailable) as waiting:
        asyncio.run(_ledger(erp, import_wait_seconds=0.3).post_receipt(request))
    assert "import job is running" in waiting.value.message
    assert waiting.value.retryable
    erp.start()
    posted = asyncio.run(_ledger(erp).post_receipt(request))
    assert posted.replayed
    assert _payments(erp) == 1


def test_misconfiguration_is_named_before_anything_is_staged(erp: Erp) -> None:
    with pytest.raises(Misconfigured) as missing:
        asyncio.run(_ledger(erp, receipt_gl_account="").post_receipt(_receipt("x", "1", "1.00")))
    assert "receipt_gl_account" in missing.value.message
    with pytest.raises(Rejected) as unknown:
        asyncio.run(_ledger(erp).post_receipt(_receipt("y", "1", "1.00", ("999999", "1.00"))))
    assert unknown.value.field == "invoice_id"
    with erp.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(StgCashRcpt)) == 0


def test_customers_are_created_once_and_updated(erp: Erp) -> None:
    draft = CustomerDraft(
        number="M00777",
        name="Nina Created",
        email="nina@example.org",
        phone="+1 503 555 0142",
        address=Address(
            line1="7 Pine Rd", city="Portland", region="OR", postal_code="97201", country="US"
        ),
    )
    ledger = _ledger(erp)
    created = asyncio.run(ledger.create_customer(draft, "member-link:M00777:1"))
    again = asyncio.run(ledger.create_customer(draft, "member-link:M00777:1"))
    assert created.id == again.id
    assert created.number == "M00777"
    assert (created.email, created.address.country, created.address.city) == (
        "nina@example.org",
        "US",
        "Portland",
    )
    renamed = asyncio.run(ledger.update_customer(created.id, replace(draft, name="Nina Renamed")))
    assert renamed.name == "Nina Renamed"


def test_receipts_land_exactly_once_under_lock_timeouts_and_concurrency(erp: Erp) -> None:
    erp.faults.replace(FaultPlan(seed=11, lock_timeout_rate=0.2))
    ledger = _ledger(erp)

    async def post_all() -> None:
        semaphore = asyncio.Semaphore(16)

        async def post(n: int) -> None:
            async with semaphore:
                request = _receipt(f"bulk:{n}", str(1 + n % 40), "1.00")
                await ledger.post_receipt(request)
                if n % 5 == 0:  # some callers retry after success: must replay
                    assert (await ledger.post_receipt(request)).replayed

        await asyncio.gather(*(post(n) for n in range(150)))

    asyncio.run(post_all())
    with erp.engine.connect() as conn:
        comments = conn.execute(select(tarCustPmt.c.TranCmnt)).scalars().all()
    assert len(comments) == len(set(comments)) == 150
    assert erp.processor.totals.retried > 0  # the faults did happen


def test_flat_file_mode_posts_through_the_folders(erp: Erp, tmp_path: Path) -> None:
    ledger = _ledger(
        erp,
        mode="flat_file",
        drop_folder=str(tmp_path / "inbox"),
        results_folder=str(tmp_path / "outbox"),
    )
    (tmp_path / "inbox").mkdir(exist_ok=True)
    (tmp_path / "outbox").mkdir(exist_ok=True)
    invoice, balance = _open_invoice(erp, 5)
    request = _receipt("file:1", "5", str(balance), (invoice, str(balance)))
    posted = asyncio.run(ledger.post_receipt(request))
    assert posted.id
    assert _payments(erp) == 1
    assert asyncio.run(ledger.post_receipt(request)).replayed
    assert _payments(erp) == 1
    checks = asyncio.run(ledger.check())
    assert checks[-1].name == "folders"
    assert checks[-1].ok


def test_payments_with_their_applications_and_gl_accounts_are_read(erp: Erp) -> None:
    invoice, balance = _open_invoice(erp, 8)
    ledger = _ledger(erp)
    posted = asyncio.run(
        ledger.post_receipt(_receipt("read:1", "8", str(balance + 5), (invoice, str(balance))))
    )

    async def read() -> tuple[list[LedgerPayment], list[dict[str, str]]]:
        return [p async for p in ledger.payments()], await ledger.gl_accounts()

    found, accounts = asyncio.run(read())
    [payment] = [p for p in found if p.id == posted.id]
    assert payment.kind == "receipt"
    assert payment.customer_id == "8"
    assert payment.amount == Money.parse(str(balance + 5), "USD")
    assert payment.unallocated == Money.parse("5.00", "USD")
    assert payment.applied == ((invoice, Money.parse(str(balance), "USD")),)
    assert {"number": "1010-00", "description": "Cash - Card Clearing"} in accounts
