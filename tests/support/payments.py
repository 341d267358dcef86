"""A small world for payment tests: ledgerlink's store, the PayTrace simulator on a real
socket, and a ledger simulator (Sage 500 on SQLite with its import running, or SBC),
with the connections between them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from ledgerlink import connections, demo
from ledgerlink.clock import SYSTEM_CLOCK, Clock
from ledgerlink.connectors.sage500.tables import StgCashRcpt, tarCustPmt, tarInvoice
from ledgerlink.identity.principal import cli_principal
from ledgerlink.payments import queue
from ledgerlink.payments.jobs import drain
from ledgerlink.payments.poller import poll_due
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox import sage500
from ledgerlink.sandbox.paytrace import PayTraceConfig
from ledgerlink.sandbox.paytrace import create_app as paytrace_app
from ledgerlink.settings import Settings
from ledgerlink.store.payment_models import PaymentEvent, PaymentException, PaymentPosting
from ledgerlink.store.types import utcnow
from tests.support.asgi_server import serve_in_thread
from tests.support.ledger_links import link_members
from tests.support.waiting import wait_until

ME = cli_principal()


@dataclass
class PaymentsWorld:
    runtime: Runtime
    paytrace_url: str
    paytrace_config: PayTraceConfig
    paytrace_id: int
    ledger_id: int
    erp: Engine | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    # -- PayTrace, as a merchant's other systems use it ----------------------------------

    def _token(self) -> str:
        if "access" not in self.tokens:
            self.tokens["access"] = httpx.post(
                f"{self.paytrace_url}/oauth/token",
                data={
                    "grant_type": "password",
                    "username": self.paytrace_config.username,
                    "password": self.paytrace_config.password,
                },
            ).json()["access_token"]
        return self.tokens["access"]

    def paytrace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if "http" not in self.__dict__:
            self.__dict__["http"] = httpx.Client(timeout=10)
        response = self.__dict__["http"].post(
            f"{self.paytrace_url}{path}",
            json={"integrator_id": self.paytrace_config.integrator_id, **body},
            headers={"Authorization": f"Bearer {self._token()}"},
            timeout=10,
        )
        return dict(response.json())

    def pay(self, customer_id: str, amount: str, invoice: str = "") -> str:
        """A card payment by the customer's stored card; its transaction id."""
        body = self.paytrace(
            "/v1/transactions/sale/by_customer",
            {"customer_id": customer_id, "amount": amount, "invoice_id": invoice or None},
        )
        return str(body["transaction_id"])

    def settle(self) -> None:
        httpx.post(f"{self.paytrace_url}/_sandbox/settle", json={}, timeout=10)

    def refund(self, transaction_id: str, amount: str | None = None) -> str:
        body: dict[str, Any] = {"transaction_id": int(transaction_id)}
        if amount is not None:
            body["amount"] = amount
        return str(self.paytrace("/v1/transactions/refund/for_transaction", body)["transaction_id"])

    def void(self, transaction_id: str) -> None:
        assert self.paytrace("/v1/transactions/void", {"transaction_id": int(transaction_id)})[
            "success"
        ]

    def dispute(self, transaction_id: str) -> dict[str, Any]:
        return dict(
            httpx.post(
                f"{self.paytrace_url}/_sandbox/disputes",
                json={"transaction_id": int(transaction_id)},
                timeout=10,
            ).json()
        )

    def dispute_report(self) -> bytes:
        return httpx.get(
            f"{self.paytrace_url}/_sandbox/disputes", params={"format": "csv"}, timeout=10
        ).content

    # -- ledgerlink ---------------------------------------------------------------------

    def poll(self) -> None:
        asyncio.run(poll_due(self.runtime, force=True))

    def process(self, timeout: float = 60.0) -> None:
        """Drain until nothing is left to do (deferred events included).

        A deferred event (PayTrace asked again later, a sale posted first) waits for its
        ``not_before``; instead of sleeping that backoff out, each round moves the due
        time of what is waiting to now, as if the clock had reached it."""

        def settled() -> bool:
            asyncio.run(drain(self.runtime, idle_seconds=0))
            with self.runtime.db.transaction() as session:
                waiting = session.scalar(
                    select(func.count())
                    .select_from(PaymentEvent)
                    .where(PaymentEvent.status.in_(queue.ACTIVE))
                )
                now = utcnow()
                session.execute(
                    update(PaymentEvent)
                    .where(PaymentEvent.status == "received", PaymentEvent.not_before > now)
                    .values(not_before=now)
                )
            return not waiting

        wait_until(settled, timeout=timeout, interval=0.05, what="every payment event processed")

    def event(self, transaction_id: str, kind: str = "sale", *, hint: bool = False) -> PaymentEvent:
        """The inbox event for a transaction; ``hint=True``: the silent post's hint."""
        key = f"{'hint:' if hint else ''}{transaction_id}:{kind}"
        with self.runtime.db.read() as session:
            found = session.scalar(select(PaymentEvent).where(PaymentEvent.dedup_key == key))
            assert found is not None, f"no {kind} event for {transaction_id}"
            session.expunge(found)
            return found

    def exception_for(self, transaction_id: str, kind: str = "sale") -> PaymentException | None:
        event = self.event(transaction_id, kind)
        with self.runtime.db.read() as session:
            found = session.scalar(
                select(PaymentException).where(PaymentException.event_id == event.id)
            )
            if found is not None:
                session.expunge(found)
            return found

    def postings(self) -> list[PaymentPosting]:
        with self.runtime.db.read() as session:
            rows = list(session.scalars(select(PaymentPosting).order_by(PaymentPosting.id)))
            for row in rows:
                session.expunge(row)
            return rows

    # -- SBC, through ledgerlink's own connector --------------------------------------------

    def ledger(self) -> Any:
        from ledgerlink.connectors.factory import ledger_for
        from ledgerlink.store.models import Connection

        with self.runtime.db.read() as session:
            connection = session.get(Connection, self.ledger_id)
            assert connection is not None
            session.expunge(connection)
        return ledger_for(self.runtime, connection)

    def linked_customer(self, member_number: str) -> str:
        from ledgerlink.store.member_models import MemberLinkRow, MemberRow

        with self.runtime.db.read() as session:
            return str(
                session.scalar(
                    select(MemberLinkRow.customer_id)
                    .join(MemberRow, MemberRow.id == MemberLinkRow.member_id)
                    .where(
                        MemberRow.number == member_number,
                        MemberLinkRow.connection_id == self.ledger_id,
                        MemberLinkRow.unlinked_at.is_(None),
                    )
                )
            )

    def sbc_invoices(self, customer_id: str, *, open_only: bool = True) -> list[Any]:
        async def read() -> list[Any]:
            async with self.ledger() as ledger:
                return [
                    i async for i in ledger.invoices(customer_id=customer_id, open_only=open_only)
                ]

        return asyncio.run(read())

    def sbc_invoice(self, number: str) -> Any:
        async def read() -> Any:
            async with self.ledger() as ledger:
                return await ledger.find_invoice(number)

        return asyncio.run(read())

    # -- Sage 500, as its users see it ------------------------------------------------------

    def invoice(self, tran_id: str) -> dict[str, Any]:
        assert self.erp is not None
        with self.erp.connect() as conn:
            row = conn.execute(select(tarInvoice).where(tarInvoice.c.TranID == tran_id)).one()
        return dict(row._mapping)

    def open_invoices(self, cust_key: int) -> list[dict[str, Any]]:
        assert self.erp is not None
        with self.erp.connect() as conn:
            rows = conn.execute(
                select(tarInvoice)
                .where(tarInvoice.c.CustKey == cust_key, tarInvoice.c.Balance > 0)
                .order_by(tarInvoice.c.InvcKey)
            ).all()
        return [dict(row._mapping) for row in rows]

    def erp_payments(self) -> list[dict[str, Any]]:
        assert self.erp is not None
        with self.erp.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(tarCustPmt)).all()]

    def staged_posted(self) -> dict[str, int]:
        """How many times each import reference was posted by the ERP's import."""
        assert self.erp is not None
        with self.erp.connect() as conn:
            rows = conn.execute(
                select(StgCashRcpt.c.ImportReference, func.count())
                .where(StgCashRcpt.c.ProcessStatus == 1)
                .group_by(StgCashRcpt.c.ImportReference)
            ).all()
        return {str(ref): int(n) for ref, n in rows}


@contextmanager
def sage500_world(
    settings: Settings,
    tmp_path: Path,
    *,
    people: int = 12,
    paytrace: dict[str, Any] | None = None,
    paytrace_settings: dict[str, Any] | None = None,
    silent_post_url: str | None = None,
    paytrace_faults: Any = None,
) -> Iterator[PaymentsWorld]:
    """PayTrace → Sage 500, with ``people`` members, customers and card profiles."""
    from ledgerlink.store.migrate import upgrade

    runtime = Runtime(settings)
    upgrade(runtime.db)
    url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    options = {"duplicate_window_seconds": 0, **(paytrace or {})}
    config = PayTraceConfig(seed_people=people, silent_post_url=silent_post_url, **options)
    with ExitStack() as stack:
        engine = stack.enter_context(running_erp(url, people))
        base = stack.enter_context(
            serve_in_thread(paytrace_app(tmp_path / "pt", config=config, faults=paytrace_faults))
        )
        with runtime.db.transaction() as session:
            demo.ensure_members(session, count=people)
            ledger = add_sage500_connection(runtime, session, url)
            ids = (
                _paytrace(runtime, session, config, base, ledger.id, paytrace_settings),
                ledger.id,
            )
        world = PaymentsWorld(runtime, base, config, ids[0], ids[1], engine)
        try:
            yield world
        finally:
            runtime.db.dispose()


def add_sage500_connection(runtime: Runtime, session: Any, url: str) -> Any:
    """The Sage 500 connection to the simulator's database at ``url`` (company SOA)."""
    connection = connections.create(
        session,
        runtime.vault,
        ME,
        kind="sage500",
        name="Sage 500",
        settings={"company_id": "SOA", "receipt_gl_account": "1010-00", "import_wait_seconds": 20},
        secrets={"database_url": url},
    )
    session.flush()
    return connection


@contextmanager
def running_erp(url: str, people: int, clock: Clock = SYSTEM_CLOCK) -> Iterator[Engine]:
    """The Sage 500 simulator's database at ``url``, seeded, with its import running;
    ``clock`` is the ERP server's (what it stamps rows with)."""
    engine = sage500.simulator_engine(url)
    config = sage500.Sage500Config(seed_people=people, import_interval_seconds=0.02)
    sage500.create_schema(engine)
    sage500.seed(engine, config, now=clock.now())
    stop = threading.Event()
    processor = sage500.ImportProcessor(engine, config, clock=clock)
    thread = threading.Thread(target=processor.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        stop.set()
        thread.join(timeout=10)
        engine.dispose()


def _paytrace(
    runtime: Runtime,
    session: Any,
    config: PayTraceConfig,
    base: str,
    ledger_id: int,
    settings: dict[str, Any] | None,
) -> int:
    """ledgerlink's PayTrace connection to the simulator at ``base``, posting to a ledger."""
    gateway = connections.create(
        session,
        runtime.vault,
        ME,
        kind="paytrace",
        name="PayTrace",
        settings={
            "username": config.username,
            "integrator_id": config.integrator_id,
            "api_base_url": base,
            "post_to_connection_id": ledger_id,
            **(settings or {}),
        },
        secrets={"password": config.password},
    )
    session.flush()
    return int(gateway.id)


def profiles(world: PaymentsWorld) -> list[str]:
    """PayTrace customer ids with a stored card, in order."""
    body = world.paytrace("/v1/customer/export", {})
    return sorted(str(c["customer_id"]) for c in body.get("customers", []))


@contextmanager
def sbc_world(
    settings: Settings,
    tmp_path: Path,
    *,
    people: int = 12,
    faults: Any = None,
    paytrace_faults: Any = None,
) -> Iterator[PaymentsWorld]:
    """PayTrace → SBC: the SBC simulator's seeded contacts (with invoices) linked to members."""
    from ledgerlink.sandbox.sbc import SbcConfig
    from ledgerlink.store.migrate import upgrade
    from tests.support.sbc import connect_ledgerlink, running_sbc

    runtime = Runtime(settings)
    upgrade(runtime.db)
    config = PayTraceConfig(seed_people=people, duplicate_window_seconds=0)
    with ExitStack() as stack:
        base = stack.enter_context(
            serve_in_thread(paytrace_app(tmp_path / "pt", config=config, faults=paytrace_faults))
        )
        sbc_url, _ = stack.enter_context(
            running_sbc(
                tmp_path / "sbc", SbcConfig(rate_limit_per_minute=0, seed_people=people), faults
            )
        )
        with runtime.db.transaction() as session:
            demo.ensure_members(session, count=people)
        ledger_id = connect_ledgerlink(runtime, sbc_url)
        with runtime.db.transaction() as session:
            gateway_id = _paytrace(runtime, session, config, base, ledger_id, None)
        world = PaymentsWorld(runtime, base, config, gateway_id, ledger_id)

        async def link_all() -> None:
            async with world.ledger() as ledger:
                numbers = [f"M{n:05d}" for n in range(1, people + 1)]
                await link_members(runtime.db, ledger, ledger_id, numbers)

        asyncio.run(link_all())
        try:
            yield world
        finally:
            runtime.db.dispose()
