"""The dashboard tells finance the truth (issue 19, defect 8): card payments and what
became of them add up, refunds are counted apart; the payment → posted lag covers recent
payments the running pipeline posted, not the start-up backlog; an upstream dropping
every connection shows as failing at once; e-mail set up through the API is shown as
set up."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ledgerlink.identity.roles import Role
from ledgerlink.jobs.embedded import EmbeddedRunner
from ledgerlink.settings import Settings
from ledgerlink.store.payment_models import PaymentEvent
from tests.support.payments import PaymentsWorld, profiles, sage500_world
from tests.support.smtp import smtp_server
from tests.support.waiting import wait_until
from tests.support.web import make_user, sign_in


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[PaymentsWorld]:
    with sage500_world(settings, tmp_path) as made:
        yield made


def _payments(html: str) -> str:
    """The text of the dashboard's Payments section, tags dropped, spaces collapsed."""
    section = html.split("<h2>Payments</h2>", 1)[1].split("<h2>", 1)[0]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", section)).split())


def _signed_in(client, db) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, make_user(db, Role.VIEWER).email)


def _invoice(world: PaymentsWorld, customer: str) -> str:
    return str(world.open_invoices(int(customer[1:]))[0]["TranID"])


def test_card_payments_add_up_and_refunds_are_counted_apart(world, client, db) -> None:  # type: ignore[no-untyped-def]
    first, second, third = profiles(world)[:3]
    refunded = world.pay(first, "20.00", _invoice(world, first))
    world.pay(second, "30.00", _invoice(world, second))
    world.pay(third, "40.00", "0000099999-IN")  # no such invoice: an exception
    world.settle()
    world.refund(refunded, "5.00")
    world.poll()
    world.process()
    _signed_in(client, db)
    html = client.get("/").text

    shown = _payments(html)
    # 2 + 1 = 3: what became of the card payments adds up to them
    assert "Payments received (24 h) 3 $90.00 2 posted · 1 in exceptions" in shown
    assert "Refunds, voids, chargebacks and returns (24 h) 1 1 posted to the ledger" in shown


def test_the_lag_is_over_recent_payments_posted_after_the_runner_started(
    world,
    client,
    db,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    early, late = profiles(world)[:2]
    world.pay(early, "11.00", _invoice(world, early))
    world.poll()  # received while no job runner runs: the start-up backlog
    runner = EmbeddedRunner(settings, db)
    runner.start()
    try:

        def all_posted() -> bool:
            with db.read() as session:
                statuses = list(session.scalars(select(PaymentEvent.status)))
            return bool(statuses) and set(statuses) == {"posted"}

        wait_until(all_posted, timeout=30, what="the backlog posted by the runner")
        world.pay(late, "12.00", _invoice(world, late))
        world.poll()
        wait_until(
            lambda: all_posted() and len(world.postings()) == 2,
            timeout=30,
            what="the new payment posted by the runner",
        )
        _signed_in(client, db)
        lag = _payments(client.get("/").text)
    finally:
        runner.stop()
    assert "over 1 payment(s) posted straight through, received in the last hour" in lag
    assert "(1 received before the job runner started left out: their wait was the start-up" in lag


def test_paytrace_dropping_every_connection_shows_as_failing_while_the_poll_retries(
    world,
    client,
    db,  # type: ignore[no-untyped-def]
) -> None:
    world.poll()  # a good poll first: the health said "ok" from then on
    faults = f"{world.paytrace_url}/_sandbox/faults"
    httpx.put(faults, json={"drop_rate": 1.0}, timeout=10).raise_for_status()
    polling = threading.Thread(target=world.poll)
    polling.start()
    try:
        _signed_in(client, db)

        def paytrace_failing() -> bool:
            health = _payments(client.get("/").text)
            return "PayTrace: failing" in health and "cut the connection" in health

        wait_until(paytrace_failing, timeout=10, interval=0.1, what="PayTrace shown failing")
    finally:
        httpx.put(faults, json={"drop_rate": 0.0}, timeout=10).raise_for_status()
        polling.join(timeout=60)
    assert "PayTrace: ok · Polled" in _payments(client.get("/").text)


def test_email_set_up_through_the_api_is_shown_as_set_up(client, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_user(db, Role.ADMIN)
    auth = {"Authorization": f"Bearer {admin.token}"}
    with smtp_server() as (port, inbox):
        created = client.post(
            "/api/v1/connections",
            json={
                "kind": "smtp",
                "name": "Finance e-mail",
                "settings": {
                    "host": "127.0.0.1",
                    "port": port,
                    "security": "none",
                    "from_address": "ledgerlink@example.org",
                    "recipients": ["finance@example.org"],
                },
            },
            headers=auth,
        )
        assert created.status_code == 201, created.text
        activated = client.patch(
            f"/api/v1/connections/{created.json()['id']}", json={"is_active": True}, headers=auth
        )
        assert activated.status_code == 200, activated.text
        assert inbox.subjects() == ["ledgerlink: test message"]
    health = client.get("/api/v1/payments/dashboard", headers=auth).json()["health"]
    assert [(h["name"], h["ok"]) for h in health] == [("Finance e-mail", True)]  # the same
    sign_in(client, admin.email)
    mail = _payments(client.get("/").text)
    assert "not connected" not in mail
    assert "Finance e-mail ok Finance e-mail: Digests and alerts go to finance@example.org" in mail
