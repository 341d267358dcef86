"""The anonymous push endpoints cannot move money: a silent post is a hint that PayTrace's
own record must bear out, chargebacks never come from one, a spoofed post cannot pre-empt
the real payment, floods are limited and open no exceptions, bodies are capped whatever
their type, and even a signed webhook is read back from PayTrace before it is posted.

Everything runs over real sockets: ledgerlink served by uvicorn, the PayTrace simulator,
and the Sage 500 simulator with its import running.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook

from ledgerlink import connections
from ledgerlink.connectors.http import tls_context
from ledgerlink.identity.principal import cli_principal
from ledgerlink.payments import disputes, hints, views
from ledgerlink.payments.jobs import drain
from ledgerlink.settings import Settings
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentEvent, PaymentException
from tests.support.asgi_server import serve_in_thread
from tests.support.payments import PaymentsWorld, profiles, sage500_world

SECRET = "whsec_" + base64.b64encode(b"ledgerlink-spoofing-test-secret!!").decode()


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[PaymentsWorld]:
    with sage500_world(settings, tmp_path, people=6) as found:
        with found.runtime.db.transaction() as session:
            paytrace = session.get(Connection, found.paytrace_id)
            connections.update(
                session,
                found.runtime.vault,
                cli_principal(),
                paytrace,
                secrets={"webhook_secret": SECRET},
            )
        yield found


@pytest.fixture
def inbound(world: PaymentsWorld, settings: Settings) -> Iterator[str]:
    """ledgerlink's push endpoints for the world's PayTrace connection, over HTTP."""
    from ledgerlink.web.app import create_app

    settings.run_embedded_worker = False  # the test drains the inbox itself
    with serve_in_thread(create_app(settings)) as base:
        yield f"{base}/inbound/paytrace/{world.paytrace_id}"


#: One client for the module's requests: ``httpx.post`` builds a client, and with it a TLS
#: context (29 ms of CPU), for every call; the flood test sends 300.
_HTTP = httpx.Client(verify=tls_context(), timeout=10)


def _silent_post(url: str, **fields: str) -> httpx.Response:
    parm_list = "".join(f"{key}~{value}|" for key, value in fields.items())
    return _HTTP.post(f"{url}/silent-post", data={"parmList": parm_list})


def _payer(world: PaymentsWorld) -> tuple[str, dict[str, Any]]:
    customer = profiles(world)[0]
    return customer, world.open_invoices(int(customer[1:]))[0]


def _open_exceptions(world: PaymentsWorld) -> int:
    with world.runtime.db.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(PaymentException)
                .where(PaymentException.status == "open")
            )
            or 0
        )


def _exhaust_looks(world: PaymentsWorld) -> None:
    """Move the hints' clock on: PayTrace has been asked as often as it will be."""
    with world.runtime.db.transaction() as session:
        session.execute(
            update(PaymentEvent)
            .where(PaymentEvent.dedup_key.like("hint:%"), PaymentEvent.status == "received")
            .values(attempts=hints.LOOKS, not_before=None)
        )


def test_a_forged_chargeback_silent_post_moves_no_money_and_the_real_dispute_still_posts(
    world: PaymentsWorld, inbound: str
) -> None:
    customer, invoice = _payer(world)
    sale = world.pay(customer, "40.00", invoice["TranID"])
    world.settle()
    world.poll()
    world.process()
    paid = world.invoice(invoice["TranID"])["Balance"]

    for forged in ("CHARGEBACK", "DISPUTE_WON", "CHARGEBACK"):
        answer = _silent_post(inbound, TRANSACTIONID=sale, TRANXTYPE=forged, AMOUNT="40.00")
        assert answer.status_code == 200
        world.process()
        assert world.invoice(invoice["TranID"])["Balance"] == paid, forged  # nothing reversed
        assert [p.action for p in world.postings()] == ["receipt"], forged

    assert world.event(sale, "chargeback", hint=True).status == "unverified"
    assert world.event(sale, "dispute_won", hint=True).status == "unverified"
    assert "dispute report" in (world.event(sale, "chargeback", hint=True).message or "")
    assert _open_exceptions(world) == 0

    world.dispute(sale)  # the card holder really disputes it; finance imports the report
    rows = disputes.parse_report(world.dispute_report(), "disputes.csv")
    with world.runtime.db.transaction() as session:
        imported = disputes.import_report(session, rows, world.paytrace_id)
    assert imported.new_events == 1
    world.process()
    assert world.invoice(invoice["TranID"])["Balance"] == paid + Decimal("40.00")
    chargeback = world.exception_for(sale, "chargeback")
    assert chargeback is not None
    assert chargeback.status == "open"


def test_a_spoofed_post_for_the_next_transaction_cannot_pre_empt_the_real_payment(
    world: PaymentsWorld, inbound: str
) -> None:
    customer, invoice = _payer(world)
    before = world.invoice(invoice["TranID"])["Balance"]
    earlier = world.pay(customer, "1.00", invoice["TranID"])
    guessed = str(int(earlier) + 1)  # PayTrace's ids are sequential

    spoof = _silent_post(
        inbound, TRANSACTIONID=guessed, TRANXTYPE="SALE", AMOUNT="1.00", ORDERID=invoice["TranID"]
    )
    assert spoof.status_code == 200
    asyncio.run(drain(world.runtime, idle_seconds=0))  # PayTrace does not know it yet
    real = world.pay(customer, "25.00", invoice["TranID"])
    assert real == guessed
    world.poll()
    world.process()

    assert world.event(real).status == "posted", world.event(real).message
    assert world.invoice(invoice["TranID"])["Balance"] == before - Decimal("26.00")
    hint = world.event(real, hint=True)
    assert hint.status == "unverified"
    assert "said 1.00 USD but PayTrace has 25.00 USD" in (hint.message or "")
    assert _open_exceptions(world) == 0


def test_a_hint_paytrace_confirms_posts_paytraces_record_once(
    world: PaymentsWorld, inbound: str
) -> None:
    customer, invoice = _payer(world)
    before = world.invoice(invoice["TranID"])["Balance"]
    sale = world.pay(customer, "12.34", invoice["TranID"])
    for _ in range(2):
        answer = _silent_post(
            inbound, TRANSACTIONID=sale, TRANXTYPE="SALE", AMOUNT="12.34", ORDERID="ignored"
        )
        assert answer.status_code == 200
    world.process()
    assert world.event(sale, hint=True).status == "confirmed"
    assert world.event(sale, hint=True).deliveries == 2
    real = world.event(sale)
    assert (real.source, real.status) == (hints.READ_BACK, "posted")
    assert real.payload["invoice_id"] == invoice["TranID"]  # PayTrace's, not the post's
    with world.runtime.db.read() as session:  # the payments list shows the payment once
        listed = [(row.transaction_id, row.status) for row in views.recent_events(session)]
    assert listed == [(sale, "posted")]
    world.poll()  # the export brings the same sale: it is a repeat, not a second receipt
    world.process()
    assert world.invoice(invoice["TranID"])["Balance"] == before - Decimal("12.34")
    assert len(world.erp_payments()) == 1


@pytest.fixture
def limited_inbound(world: PaymentsWorld, settings: Settings) -> Iterator[str]:
    """As ``inbound``, with the per-address limit of an installation that set it low."""
    from ledgerlink.web.app import create_app

    settings.run_embedded_worker = False
    settings.inbound_limit_per_address = "50/5 minutes"
    with serve_in_thread(create_app(settings)) as base:
        yield f"{base}/inbound/paytrace/{world.paytrace_id}"


@pytest.mark.slow  # 300 posts over HTTP, each hint read back
def test_a_flood_of_spoofed_posts_is_limited_and_opens_no_exceptions(
    world: PaymentsWorld, limited_inbound: str
) -> None:
    inbound = limited_inbound
    answers = [
        _silent_post(inbound, TRANSACTIONID=str(990_000_000 + n), TRANXTYPE="SALE", AMOUNT="1")
        for n in range(300)
    ]
    accepted = [a for a in answers if a.status_code == 200]
    limited = [a for a in answers if a.status_code == 429]
    assert (len(accepted), len(limited)) == (50, 250)
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert "nothing is lost" in limited[0].json()["detail"]

    _exhaust_looks(world)
    world.process()
    with world.runtime.db.read() as session:
        statuses = set(session.scalars(select(PaymentEvent.status)))
    assert statuses == {"unverified"}
    assert _open_exceptions(world) == 0
    assert world.postings() == []


def test_a_silent_post_body_is_capped_whatever_its_content_type(
    world: PaymentsWorld, inbound: str
) -> None:
    url = f"{inbound}/silent-post"
    fields = {"TRANSACTIONID": "990000001", "TRANXTYPE": "SALE", "AMOUNT": "1.00"}
    small = httpx.post(url, files={name: (None, value) for name, value in fields.items()})
    assert small.status_code == 200
    for size in (900_000, 50_000_000):
        big = httpx.post(
            url, files={**{n: (None, v) for n, v in fields.items()}, "RESPONSE": (None, "x" * size)}
        )
        assert big.status_code == 413, size
        assert big.headers["content-type"] == "application/problem+json"
    long_value = httpx.post(
        url, data={**fields, "TRANSACTIONID": "990000002", "RESPONSE": "y" * 300}
    )
    assert long_value.status_code == 400
    assert long_value.json()["errors"][0]["field"] == "response"
    with world.runtime.db.read() as session:
        stored = session.scalars(select(PaymentEvent.payload)).all()
    assert [payload["transaction_id"] for payload in stored] == ["990000001"]


@pytest.mark.parametrize("route", ["silent-post", "webhook"])
def test_a_connection_id_beyond_64_bits_is_not_found(inbound: str, route: str) -> None:
    base = inbound.rsplit("/", 1)[0]
    answer = httpx.post(f"{base}/9223372036854775808/{route}", data={"TRANSACTIONID": "1"})
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


def _webhook(url: str, message_id: str, data: dict[str, Any]) -> httpx.Response:
    body = json.dumps({"type": "payment.sale", "data": data})
    moment = datetime.now(UTC)
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(message_id, moment, body),
        "content-type": "application/json",
    }
    return _HTTP.post(f"{url}/webhook", content=body, headers=headers)


def test_a_signed_webhook_is_read_back_so_the_secret_alone_cannot_post(
    world: PaymentsWorld, inbound: str
) -> None:
    customer, invoice = _payer(world)
    before = world.invoice(invoice["TranID"])["Balance"]
    invented = {"transaction_id": "990000777", "amount": "30.00", "invoice_id": invoice["TranID"]}
    assert _webhook(inbound, "msg_invented", invented).status_code == 202
    sale = world.pay(customer, "5.00", invoice["TranID"])
    inflated = {"transaction_id": sale, "amount": "500.00", "invoice_id": invoice["TranID"]}
    assert _webhook(inbound, "msg_inflated", inflated).status_code == 202
    world.process()

    assert world.invoice(invoice["TranID"])["Balance"] == before - Decimal("5.00")
    refused = world.exception_for("990000777")
    assert refused is not None
    assert refused.critical
    assert "PayTrace does not have" in refused.reason
    assert "webhook secret" in refused.fix
    posted = world.event(sale)
    assert posted.status == "posted"
    assert "said 500.00 USD but PayTrace has 5.00 USD" in (posted.message or "")
