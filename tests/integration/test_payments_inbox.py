"""The payments inbox and its inbound endpoints: silent posts and signed webhooks land once,
card numbers are refused, bad signatures and replays are refused, and the PayTrace
simulator's own silent posts arrive."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from ledgerlink import connections
from ledgerlink.identity.principal import cli_principal
from ledgerlink.sandbox.paytrace import PayTraceConfig, create_app
from ledgerlink.store.db import Database
from ledgerlink.store.payment_models import PaymentEvent
from tests.support.asgi_server import serve_in_thread
from tests.support.waiting import wait_until

SECRET = "whsec_" + base64.b64encode(b"ledgerlink-test-webhook-secret!!").decode()


def _paytrace_connection(client) -> int:  # type: ignore[no-untyped-def]
    runtime = client.app.state.runtime
    with runtime.db.transaction() as session:
        connection = connections.create(
            session,
            runtime.vault,
            cli_principal(),
            kind="paytrace",
            name="PayTrace",
            settings={"username": "u", "integrator_id": "i"},
            secrets={"password": "p", "webhook_secret": SECRET},
        )
        return int(connection.id)


def _events(db: Database) -> list[PaymentEvent]:
    with db.read() as session:
        found = list(session.scalars(select(PaymentEvent).order_by(PaymentEvent.id)))
        for event in found:
            session.expunge(event)
        return found


def _parm_list(**fields: str) -> str:
    return "".join(f"{k}~{v}|" for k, v in fields.items())


def test_a_silent_post_lands_once_unverified_and_repeats_are_counted(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    connection_id = _paytrace_connection(client)
    form = {
        "parmList": _parm_list(
            TRANSACTIONID="180000123",
            TRANXTYPE="SALE",
            ORDERID="0000000001-IN",
            CUSTID="C00001",
            AMOUNT="120.00",
            RESPONSECODE="101",
            MASKEDCARD="xxxxxxxxxxxx5439",
            CARDTYPE="Visa",
        )
    }
    for _ in range(3):
        response = client.post(f"/inbound/paytrace/{connection_id}/silent-post", data=form)
        assert response.status_code == 200
        assert response.text == "OK"
    [event] = _events(db)
    assert (event.source, event.kind, event.transaction_id, event.verified) == (
        "silent_post",
        "sale",
        "180000123",
        False,
    )
    assert event.payload["invoice_id"] == "0000000001-IN"
    assert event.payload["amount"] == "120.00"
    assert event.deliveries == 3
    assert event.status == "received"


def test_card_numbers_and_unknown_types_are_refused_naming_the_field(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    connection_id = _paytrace_connection(client)
    leaked = client.post(
        f"/inbound/paytrace/{connection_id}/silent-post",
        data={
            "parmList": _parm_list(
                TRANSACTIONID="1", TRANXTYPE="SALE", MASKEDCARD="4012 0000 9876 5439"
            )
        },
    )
    assert leaked.status_code == 400
    assert leaked.json()["errors"] == [{"field": "masked_card", "message": leaked.json()["detail"]}]
    assert "card number" in leaked.json()["detail"]
    odd = client.post(
        f"/inbound/paytrace/{connection_id}/silent-post",
        data={"TRANSACTIONID": "2", "TRANXTYPE": "LAYAWAY"},
    )
    assert odd.status_code == 400
    assert odd.json()["errors"][0]["field"] == "type"
    assert (
        client.post("/inbound/paytrace/999/silent-post", data={"TRANSACTIONID": "3"}).status_code
        == 404
    )
    assert _events(db) == []


def test_card_numbers_with_dots_slashes_or_underscores_are_refused_naming_the_field(  # type: ignore[no-untyped-def]
    client, db: Database
) -> None:
    connection_id = _paytrace_connection(client)
    for number, written in enumerate(
        ("4111.1111.1111.1111", "4111/1111/1111/1111", "4111_1111_1111_1111"), start=1
    ):
        refused = client.post(
            f"/inbound/paytrace/{connection_id}/silent-post",
            data={"TRANSACTIONID": str(number), "TRANXTYPE": "SALE", "MASKEDCARD": written},
        )
        assert refused.status_code == 400, written
        assert refused.json()["errors"][0]["field"] == "masked_card"
        assert "card number" in refused.json()["detail"]
        assert written not in refused.text
    assert _events(db) == []


def _signed(body: dict, msg_id: str, at: datetime | None = None) -> tuple[bytes, dict[str, str]]:  # type: ignore[type-arg]
    data = json.dumps(body)
    moment = at or datetime.now(UTC)
    signature = Webhook(SECRET).sign(msg_id, moment, data)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return data.encode(), headers


def test_a_signed_webhook_is_accepted_once_and_verified(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    connection_id = _paytrace_connection(client)
    body = {
        "type": "payment.refund",
        "data": {
            "transaction_id": 180000200,
            "amount": "20.00",
            "original_transaction_id": 180000123,
        },
    }
    content, headers = _signed(body, "msg_1")
    first = client.post(
        f"/inbound/paytrace/{connection_id}/webhook", content=content, headers=headers
    )
    again = client.post(
        f"/inbound/paytrace/{connection_id}/webhook", content=content, headers=headers
    )
    assert first.status_code == 202
    assert first.json()["duplicate"] is False
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    [event] = _events(db)
    assert (event.kind, event.verified, event.delivery_id) == ("refund", True, "msg_1")
    assert event.payload["original_transaction_id"] == "180000123"


def test_bad_signatures_old_deliveries_and_missing_secrets_are_refused(
    client, db: Database
) -> None:  # type: ignore[no-untyped-def]
    connection_id = _paytrace_connection(client)
    body = {"type": "payment.sale", "data": {"transaction_id": "5"}}
    content, headers = _signed(body, "msg_2")
    tampered = client.post(
        f"/inbound/paytrace/{connection_id}/webhook",
        content=content.replace(b"5", b"6"),
        headers=headers,
    )
    assert tampered.status_code == 401
    content, headers = _signed(body, "msg_3", at=datetime.now(UTC) - timedelta(hours=1))
    replayed = client.post(
        f"/inbound/paytrace/{connection_id}/webhook", content=content, headers=headers
    )
    assert replayed.status_code == 401
    runtime = client.app.state.runtime
    with runtime.db.transaction() as session:
        bare = connections.create(
            session,
            runtime.vault,
            cli_principal(),
            kind="paytrace",
            name="No webhooks",
            settings={"username": "u", "integrator_id": "i"},
        )
        bare_id = bare.id
    content, headers = _signed(body, "msg_4")
    unset = client.post(f"/inbound/paytrace/{bare_id}/webhook", content=content, headers=headers)
    assert unset.status_code == 409
    assert "webhook secret" in unset.json()["detail"]
    assert _events(db) == []


def test_the_paytrace_simulators_silent_posts_arrive(
    settings, db: Database, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from ledgerlink.web.app import create_app as ledgerlink_app

    settings.run_embedded_worker = False
    app = ledgerlink_app(settings)
    runtime = app.state.runtime
    with runtime.db.transaction() as session:
        connection_id = connections.create(
            session,
            runtime.vault,
            cli_principal(),
            kind="paytrace",
            name="PayTrace",
            settings={"username": "u", "integrator_id": "i"},
            secrets={"password": "p"},
        ).id
    with serve_in_thread(app) as base:
        config = PayTraceConfig(
            seed_people=4, silent_post_url=f"{base}/inbound/paytrace/{connection_id}/silent-post"
        )
        with serve_in_thread(create_app(tmp_path / "pt", config=config)) as paytrace:
            import httpx

            token = httpx.post(
                f"{paytrace}/oauth/token",
                data={
                    "grant_type": "password",
                    "username": config.username,
                    "password": config.password,
                },
            ).json()["access_token"]
            sale = httpx.post(
                f"{paytrace}/v1/transactions/sale/by_customer",
                json={
                    "integrator_id": config.integrator_id,
                    "customer_id": "C00001",
                    "amount": "42.00",
                    "invoice_id": "0000000007-IN",
                },
                headers={"Authorization": f"Bearer {token}"},
            ).json()
            wait_until(lambda: _events(db), timeout=10, what="the sale's silent post stored")
    [event] = _events(db)
    assert event.transaction_id == str(sale["transaction_id"])
    assert (event.kind, event.payload["amount"], event.payload["invoice_id"]) == (
        "sale",
        "42.00",
        "0000000007-IN",
    )
    assert "masked_card" in event.payload
    assert event.payload["masked_card"].startswith("x")


def test_a_burst_with_repeats_stores_each_event_once_and_answers_each_delivery(  # type: ignore[no-untyped-def]
    client, db: Database
) -> None:
    """Deliveries that arrive together are stored together: a repeat of one stored earlier
    and repeats inside the burst are answered as duplicates and counted, never stored twice,
    and every new event gets its own id."""
    import asyncio

    import httpx

    connection_id = _paytrace_connection(client)
    url = f"/inbound/paytrace/{connection_id}/webhook"
    earlier = _signed_sale({"transaction_id": "180000500", "amount": "1.00"}, "msg_earlier")
    assert client.post(url, content=earlier[0], headers=earlier[1]).status_code == 202

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            deliveries = [
                _signed_sale(
                    {"transaction_id": str(180_000_500 + n % 12), "amount": "1.00"}, f"m{n}"
                )
                for n in range(36)
            ]
            return list(
                await asyncio.gather(
                    *(http.post(url, content=body, headers=headers) for body, headers in deliveries)
                )
            )

    answers = asyncio.run(burst())
    new = [a.json() for a in answers if a.status_code == 202]
    repeats = [a.json() for a in answers if a.status_code == 200]
    assert len(new) == 11
    assert len(repeats) == 25
    assert len({a["event_id"] for a in new}) == 11
    assert all(a["duplicate"] and a["event_id"] is None for a in repeats)
    events = _events(db)
    assert sorted(e.transaction_id for e in events) == [str(180_000_500 + n) for n in range(12)]
    assert sum(e.deliveries for e in events) == 37


def test_text_the_database_cannot_store_is_refused_with_422_and_the_others_still_land(  # type: ignore[no-untyped-def]
    client, db: Database
) -> None:
    connection_id = _paytrace_connection(client)
    url = f"/inbound/paytrace/{connection_id}/silent-post"
    bad = client.post(
        url,
        data={
            "parmList": _parm_list(TRANSACTIONID="180000601", TRANXTYPE="SALE", RESPONSE="a\x00b")
        },
    )
    good = client.post(
        url, data={"parmList": _parm_list(TRANSACTIONID="180000602", TRANXTYPE="SALE")}
    )
    assert good.status_code == 200
    if db.is_sqlite:  # SQLite keeps NUL in text; PostgreSQL refuses it
        assert bad.status_code == 200
        return
    assert bad.status_code == 422, bad.text
    assert bad.headers["content-type"] == "application/problem+json"
    assert "cannot be stored" in bad.json()["detail"]
    assert [e.transaction_id for e in _events(db)] == ["180000602"]


def _signed_sale(data: dict[str, str], message_id: str) -> tuple[str, dict[str, str]]:
    body = json.dumps({"type": "payment.sale", "data": data})
    moment = datetime.now(UTC)
    return body, {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(message_id, moment, body),
        "content-type": "application/json",
    }
