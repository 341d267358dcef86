"""Autopay charges an invoice once even when the worker charging it is SIGKILLed between
sending the charge to PayTrace and recording what came back: the rerun finds the charge
by its idempotency key (connection + invoice) instead of charging again, and the PayTrace
poller brings the one sale in and posts it to the invoice."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from ledgerlink.invoice_requests.detection import detect_new_invoices
from ledgerlink.invoice_requests.jobs import RUN
from ledgerlink.invoice_requests.preferences import set_preference
from ledgerlink.invoice_requests.requesting import work_due
from ledgerlink.sandbox.faults import FaultInjector, FaultPlan
from ledgerlink.settings import Settings
from ledgerlink.store.invoice_request_models import InvoiceRequest
from ledgerlink.store.payment_models import PaymentCharge
from ledgerlink.store.types import utcnow
from tests.integration.test_invoice_requests import (
    CONSENT,
    MEMBER,
    _link_sage500_member,
    new_sage500_invoice,
)
from tests.support.pay_links import open_balance, sales_for
from tests.support.payments import ME, PaymentsWorld, sage500_world
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2.0
#: Only the sale waits (long enough to kill the worker while it is in flight).
SLOW_SALE = FaultPlan(
    latency_ms=1500,
    exempt_paths=["/oauth", "/v1/customer", "/v1/transactions/export", "/v1/checks", "/v1/batches"],
)


@pytest.fixture
def faults() -> FaultInjector:
    return FaultInjector()


@pytest.fixture
def world(settings: Settings, tmp_path: Path, faults: FaultInjector) -> Iterator[PaymentsWorld]:
    with sage500_world(settings, tmp_path, people=2, paytrace_faults=faults) as made:
        _link_sage500_member(made, MEMBER, "1")
        yield made


def _worker(settings: Settings, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINK_")}
    assert settings.vault_keys is not None
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "LEDGERLINK_DATABASE_URL": settings.resolved_database_url,
            "LEDGERLINK_VAR_DIR": str(tmp_path / "worker-var"),
            "LEDGERLINK_VAULT_KEYS": settings.vault_keys.get_secret_value(),
            "LEDGERLINK_PAYMENTS_LEASE_SECONDS": str(LEASE_SECONDS),
            "LEDGERLINK_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
            "LEDGERLINK_JOB_POLL_SECONDS": "0.1",
            "LEDGERLINK_LOG_FORMAT": "console",
        }
    )
    log = (tmp_path / "worker.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "ledgerlink.jobs"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _charge_status(world: PaymentsWorld, key: str) -> str | None:
    with world.runtime.db.read() as session:
        return session.scalar(
            select(PaymentCharge.status).where(PaymentCharge.idempotency_key == key)
        )


def test_autopay_charges_once_when_the_worker_is_killed_mid_charge(
    world: PaymentsWorld, settings: Settings, tmp_path: Path, faults: FaultInjector
) -> None:
    asyncio.run(set_preference(world.runtime, ME, MEMBER, mode="autopay", **CONSENT))
    asyncio.run(detect_new_invoices(world.runtime))  # where new invoices start
    invoice = new_sage500_invoice(world, 1, "61.00", dt.date.today())  # due today
    faults.replace(SLOW_SALE)
    with world.runtime.db.transaction() as session:
        world.runtime.jobs.enqueue(session, RUN)

    worker = _worker(settings, tmp_path)
    try:
        key = wait_until(
            lambda: _charge_key(world),
            timeout=30,
            what=f"the invoice request to be found; worker log in {tmp_path}",
        )
        wait_until(
            lambda: _charge_status(world, key) == "sending",
            timeout=30,
            what=f"the charge to be sent to PayTrace; worker log in {tmp_path}",
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    # The dead worker's request ends at PayTrace (taken or not: uvicorn may drop a request
    # whose client is gone) once the injected latency has passed.
    time.sleep(SLOW_SALE.latency_ms / 1000 + 0.5)
    faults.replace(FaultPlan())

    later = utcnow() + dt.timedelta(seconds=LEASE_SECONDS + 1)
    again = asyncio.run(work_due(world.runtime, later))
    asyncio.run(work_due(world.runtime, later + dt.timedelta(minutes=5)))

    assert again == {"charged": 1}
    [sale] = sales_for(world, invoice)
    assert Decimal(str(sale["amount"])) == Decimal("61.00"), "charged once, all of it"
    with world.runtime.db.read() as session:
        [request] = session.scalars(select(InvoiceRequest)).all()
    assert (request.state, request.transaction_id) == ("charged", str(sale["transaction_id"]))
    # the interrupted charge records what PayTrace's record showed (its sale, or none when
    # uvicorn dropped the dead worker's request), so it no longer counts as in flight
    assert _charge_status(world, key) in ("approved", "failed")
    world.poll()  # PayTrace's record of the one sale is posted to the invoice
    world.process()
    assert open_balance(world, invoice) == Decimal(0)


def _charge_key(world: PaymentsWorld) -> str | None:
    with world.runtime.db.read() as session:
        return session.scalar(select(InvoiceRequest.charge_key))
