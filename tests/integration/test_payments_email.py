"""Finance hears by e-mail, through a real SMTP server (aiosmtpd): a test message, an alert
once per critical failure, a threshold alert at most hourly, one digest a day of what
was reconciled, and a failed delivery recorded with its reason."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from ledgerlink import connections
from ledgerlink.connectors.checks import check_connection
from ledgerlink.payments.notify import run_notifications
from ledgerlink.settings import Settings
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import NotificationLog
from tests.support.payments import ME, PaymentsWorld, profiles, sage500_world
from tests.support.smtp import smtp_server


@pytest.fixture
def world(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    with sage500_world(settings, tmp_path) as made:
        yield made


def _mail_settings(world: PaymentsWorld, port: int, **extra: object) -> int:
    with world.runtime.db.transaction() as session:
        connection = connections.create(
            session,
            world.runtime.vault,
            ME,
            kind="smtp",
            name="Mail",
            settings={
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "from_address": "ledgerlink@example.org",
                "recipients": ["finance@example.org", "controller@example.org"],
                "digest_at": "",
                **extra,
            },
            secrets={},
        )
        connections.update(session, world.runtime.vault, ME, connection, is_active=True)
        return int(connection.id)


def _run(world: PaymentsWorld, now: dt.datetime | None = None) -> list[str]:
    return [m.kind for m in asyncio.run(run_notifications(world.runtime, now))]


def test_test_connection_sends_a_test_message(world: PaymentsWorld) -> None:
    with smtp_server() as (port, inbox):
        connection_id = _mail_settings(world, port)
        with world.runtime.db.read() as session:
            connection = session.get(Connection, connection_id)
            session.expunge(connection)
        [result] = asyncio.run(check_connection(world.runtime, connection))  # type: ignore[arg-type]
        assert result.ok, result.detail
        assert inbox.subjects() == ["ledgerlink: test message"]
        assert inbox.envelopes[0] == (
            "ledgerlink@example.org",
            ["finance@example.org", "controller@example.org"],
        )


def test_a_critical_failure_is_alerted_once_and_thresholds_hourly(world: PaymentsWorld) -> None:
    with world.runtime.db.transaction() as session:
        gateway = session.get(Connection, world.paytrace_id)
        connections.update(  # payments posted to a connection that is not a ledger
            session,
            world.runtime.vault,
            ME,
            gateway,  # type: ignore[arg-type]
            settings={"post_to_connection_id": world.paytrace_id},
        )
    customer = profiles(world)[0]
    sale = world.pay(customer, "9.00", world.open_invoices(int(customer[1:]))[0]["TranID"])
    world.poll()
    world.process()
    assert world.exception_for(sale).critical  # type: ignore[union-attr]
    with smtp_server() as (port, inbox):
        _mail_settings(world, port, exceptions_threshold=1)
        assert sorted(_run(world)) == ["alert", "threshold"]
        body = inbox.body(inbox.subjects().index("ledgerlink: 1 payment(s) could not be posted"))
        assert sale in body
        assert "is not a ledger" in body
        assert _run(world) == []  # the same failure is not e-mailed twice; thresholds wait
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
        assert _run(world, later) == ["threshold"]


def test_one_digest_a_day_lists_what_was_reconciled(world: PaymentsWorld) -> None:
    customer = profiles(world)[0]
    invoice = world.open_invoices(int(customer[1:]))[0]["TranID"]
    sale = world.pay(customer, "12.34", invoice)
    world.poll()
    world.process()
    with smtp_server() as (port, inbox):
        _mail_settings(world, port, digest_at="00:00", timezone="America/New_York")
        assert _run(world) == ["digest"]
        body = inbox.body(0)
        assert "1 card payments posted as receipts: $12.34" in body
        assert f"PayTrace {sale} invoice {invoice} $12.34" in body
        assert _run(world) == []


def test_a_delivery_that_fails_is_logged_with_the_reason(world: PaymentsWorld) -> None:
    with smtp_server() as (port, _):
        pass  # the server is gone: nothing listens on the port any more
    _mail_settings(world, port, digest_at="00:00")
    assert _run(world) == []
    with world.runtime.db.read() as session:
        [entry] = session.scalars(select(NotificationLog)).all()
    assert (entry.kind, entry.ok) == ("digest", False)
    assert f"127.0.0.1:{port}" in (entry.error or "")
