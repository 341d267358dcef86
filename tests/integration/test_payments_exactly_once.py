"""Exactly once, whatever happens on the way: every event delivered three times in a
shuffled order, upstreams failing a fifth of the time, and a worker killed with SIGKILL
ten times in the middle of 2,000 payments. The ledgers (simulators) are counted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from ledgerlink.payments.inbox import accept, from_silent_post
from ledgerlink.sandbox.faults import FaultInjector, FaultPlan
from ledgerlink.settings import Settings
from ledgerlink.store.payment_models import PaymentEvent, PaymentPosting
from tests.support.asgi_server import serve_in_thread
from tests.support.payments import PaymentsWorld, profiles, sage500_world, sbc_world
from tests.support.server import server_env
from tests.support.waiting import wait_until

SILENT_POST_TYPES = {"SALE": "SALE", "REFUND": "REFUND", "VOID": "VOID"}


def _silent_posts(world: PaymentsWorld, voided_sales: set[str]) -> list[str]:
    """What PayTrace would have pushed for everything in its export (a voided sale was
    pushed as a SALE first and as a VOID later)."""
    from datetime import date, timedelta

    today = date.today()
    body = world.paytrace(
        "/v1/transactions/export/by_date_range",
        {
            "start_date": (today - timedelta(days=1)).strftime("%m/%d/%Y"),
            "end_date": (today + timedelta(days=1)).strftime("%m/%d/%Y"),
        },
    )
    forms = []
    for item in body["transactions"]:
        transaction_id = str(item["transaction_id"])
        if item["created"]["by"] != world.paytrace_config.username:
            continue  # seeded history from before ledgerlink
        kinds = [item["transaction_type"]]
        if transaction_id in voided_sales:
            kinds = ["SALE", "VOID"]
        for kind in kinds:
            fields = {
                "TRANSACTIONID": transaction_id,
                "TRANXTYPE": kind,
                "ORDERID": item["invoice_id"] or "",
                "CUSTID": item["customer_id"] or "",
                "AMOUNT": f"{Decimal(str(item['amount'])):.2f}",
                "RESPONSECODE": str(item["response_code"]),
                "ORIGINALTRANSACTIONID": str(item["original_transaction_id"] or ""),
            }
            forms.append("".join(f"{k}~{v}|" for k, v in fields.items()))
    return forms


def test_each_event_three_times_shuffled_posts_each_once(
    settings: Settings, tmp_path: Path
) -> None:
    from ledgerlink.web.app import create_app

    with sage500_world(settings, tmp_path, people=16) as world:
        settings.run_embedded_worker = False
        app = create_app(settings)
        customers = profiles(world)
        sales: dict[str, tuple[str, Decimal]] = {}
        for customer in customers:
            owed = world.open_invoices(int(customer[1:]))[0]
            sales[world.pay(customer, "5.00", owed["TranID"])] = (
                owed["TranID"],
                Decimal(owed["Balance"]),
            )
        world.settle()
        refunded = list(sales)[:3]
        refunds = [world.refund(sale, "2.00") for sale in refunded]
        voided = {world.pay(customers[0], "7.00", sales[refunded[0]][0])}
        world.void(next(iter(voided)))
        forms = _silent_posts(world, voided) * 3
        random.Random(7).shuffle(forms)
        with serve_in_thread(app) as base:
            url = f"{base}/inbound/paytrace/{world.paytrace_id}/silent-post"
            with httpx.Client(timeout=10) as http:
                for form in forms:
                    assert http.post(url, data={"parmList": form}).status_code == 200
        world.process()

        for sale, (invoice, balance) in sales.items():
            assert world.event(sale).status == "posted", world.event(sale).message
            assert world.event(sale, hint=True).deliveries == 3
            assert world.event(sale, hint=True).status == "confirmed"
            back = Decimal("2.00") if sale in refunded else Decimal("0")
            assert Decimal(world.invoice(invoice)["Balance"]) == balance - Decimal("5.00") + back
        for refund in refunds:
            assert world.event(refund, "refund").status == "posted", world.event(
                refund, "refund"
            ).message
        assert world.event(next(iter(voided))).status == "ignored"
        per_key = Counter(p.idempotency_key for p in world.postings())
        assert set(per_key.values()) == {1}
        assert len(world.erp_payments()) == len(sales) + len(refunded)


def test_a_fifth_of_all_upstream_calls_failing_still_posts_each_once(
    settings: Settings, tmp_path: Path
) -> None:
    plan = FaultPlan(error_rate=0.2, lost_reply_rate=0.05, seed=11)
    sbc_faults = FaultInjector()
    paytrace_faults = FaultInjector()
    with sbc_world(
        settings, tmp_path, people=24, faults=sbc_faults, paytrace_faults=paytrace_faults
    ) as world:
        payers = []
        for customer in profiles(world):
            contact = world.linked_customer("M" + customer[1:])
            invoices = world.sbc_invoices(contact) if contact != "None" else []
            if invoices:
                payers.append((customer, invoices[0]))
        assert len(payers) >= 4
        sales = {}
        for _ in range(3):
            for customer, invoice in payers:
                sales[world.pay(customer, "1.00", invoice.number)] = invoice
        forms = _silent_posts(world, set())
        sbc_faults.replace(plan)
        paytrace_faults.replace(FaultPlan(error_rate=0.2, seed=12))
        with world.runtime.db.transaction() as session:
            for form in forms:  # unsigned pushes: each is read back from PayTrace
                accept(session, from_silent_post({"parmList": form}, world.paytrace_id))
        world.poll()
        world.process(timeout=180)
        for sale in sales:
            assert world.event(sale).status == "posted", world.event(sale).message
        assert sbc_faults.counts.get("error", 0) > 0
        assert sbc_faults.counts.get("lost_reply", 0) > 0
        assert paytrace_faults.counts.get("error", 0) > 0
        per_invoice = Counter(invoice.number for invoice in sales.values())
        sbc_faults.replace(FaultPlan())
        for number, paid in per_invoice.items():
            before = next(i for _, i in payers if i.number == number)
            after = world.sbc_invoice(number)
            assert after.outstanding.minor == before.outstanding.minor - 100 * paid


@pytest.mark.slow  # 2,000 payments through a worker SIGKILLed ten times
def test_a_worker_killed_ten_times_loses_and_doubles_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    payments = 2_000
    with sage500_world(settings, tmp_path, people=40) as world:
        invoices = {}
        for customer in profiles(world):  # invoices with room for every payment
            roomy = [i for i in world.open_invoices(int(customer[1:])) if i["Balance"] >= 150]
            if roomy:
                invoices[customer] = roomy[0]
        customers = sorted(invoices)
        assert len(customers) >= 10
        rng = random.Random(5)
        paid: Counter[str] = Counter()
        chosen = [rng.choice(customers) for _ in range(payments)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda c: world.pay(c, "0.25", invoices[c]["TranID"]), chosen))
        paid.update(invoices[c]["TranID"] for c in chosen)
        world.poll()
        env = {**server_env(settings), "LEDGERLINK_PAYMENTS_LEASE_SECONDS": "2"}
        command = [sys.executable, "-m", "ledgerlink.cli", "payments", "process", "--idle", "1"]

        def posted() -> int:
            with world.runtime.db.read() as session:
                return int(
                    session.scalar(
                        select(func.count())
                        .select_from(PaymentEvent)
                        .where(PaymentEvent.status == "posted")
                    )
                    or 0
                )

        kills = 0
        while kills < 10:
            before = posted()
            worker = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            wait_until(
                lambda: posted() >= before + 60,  # noqa: B023 - before is this round's
                timeout=60,
                what="60 more payments posted before the kill",
            )
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
            kills += 1
        assert posted() < payments, "the kills must land while payments are still pending"
        world.process(timeout=240)

        with world.runtime.db.read() as session:
            stuck = session.execute(
                select(
                    PaymentEvent.transaction_id, PaymentEvent.status, PaymentEvent.message
                ).where(PaymentEvent.status != "posted")
            ).all()
        assert stuck == []
        assert posted() == payments
        with world.runtime.db.read() as session:
            keys = session.execute(
                select(PaymentPosting.idempotency_key, func.count()).group_by(
                    PaymentPosting.idempotency_key
                )
            ).all()
        assert len(keys) == payments
        assert {n for _, n in keys} == {1}
        assert len(world.erp_payments()) == payments
        for customer, invoice in invoices.items():
            expected = Decimal(invoice["Balance"]) - Decimal("0.25") * paid[invoice["TranID"]]
            assert Decimal(world.invoice(invoice["TranID"])["Balance"]) == expected, customer
