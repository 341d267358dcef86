"""The portal's charts show what is stored (issue 19, charts): each chart's table has the
numbers the database holds per day, counted in SQL on SQLite and PostgreSQL alike."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from html import unescape
from itertools import count

import pytest
from sqlalchemy import text

from ledgerlink import overview
from ledgerlink.identity.roles import Role
from ledgerlink.recon.scopes import ensure_scope
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentEvent
from ledgerlink.store.recon_models import (
    ReconBatch,
    ReconBreak,
    ReconStatement,
    ReconStatementLine,
)
from ledgerlink.store.sync_models import SyncRecord, SyncRun
from ledgerlink.web.portal.charts import day_label
from tests.support.web import make_user, sign_in

_ids = count(1)


def _store(
    db: Database,
    received_at: datetime,
    amount: str,
    *,
    status: str = "posted",
    kind: str = "sale",
    verified: bool = True,
    lag_seconds: float = 2.0,
) -> None:
    n = next(_ids)
    with db.transaction() as session:
        session.add(
            PaymentEvent(
                source="poller",
                transaction_id=f"T{n}",
                kind=kind,
                dedup_key=f"chart-{n}",
                payload={"amount": amount, "currency": "USD"},
                verified=verified,
                status=status,
                received_at=received_at,
                processed_at=received_at + timedelta(seconds=lag_seconds)
                if status == "posted"
                else None,
            )
        )


def _table(html: str, key: str) -> dict[str, list[str]]:
    """A chart's table as {row heading: [cell texts]}."""
    found = re.search(rf'data-testid="chart-table-{key}".*?<tbody>(.*?)</tbody>', html, re.S)
    assert found, f"no table for chart {key}"
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S):
        cells = [
            unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def stored(db: Database) -> datetime:
    """Two weeks of card payments: today three (two of the same amount), two days ago one
    in exceptions; what must not be counted: an unverified notice, a refund, and a
    payment from 15 days ago (outside the chart)."""
    now = datetime.now(UTC)
    _store(db, now, "20.00")
    _store(db, now, "20.00", lag_seconds=4.0)
    _store(db, now, "35.50", lag_seconds=6.0)
    _store(db, now - timedelta(days=2), "12.34", status="exception")
    _store(db, now, "99.00", status="unverified", verified=False)
    _store(db, now, "5.00", kind="refund")
    _store(db, now - timedelta(days=15), "1000.00")
    return now


def test_the_dashboard_chart_table_has_the_payments_stored_per_day(client, db, stored) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, make_user(db, Role.VIEWER).email)
    html = client.get("/").text

    today, two_days_ago = stored.date(), stored.date() - timedelta(days=2)
    payments = _table(html, "payments-per-day")
    assert len(payments) == 14
    expected = {day_label(today - timedelta(days=i)): ["0"] for i in range(14)}
    expected[day_label(today)] = ["3"]
    expected[day_label(two_days_ago)] = ["1"]
    assert payments == expected

    amounts = _table(html, "amount-per-day-usd")
    assert amounts[day_label(today)] == ["$75.50"]
    assert amounts[day_label(two_days_ago)] == ["$12.34"]
    assert amounts[day_label(today - timedelta(days=1))] == ["$0.00"]

    outcomes = _table(html, "posted-vs-exceptions")
    assert outcomes[day_label(today)] == ["3", "0"]
    assert outcomes[day_label(two_days_ago)] == ["0", "1"]

    lags = _table(html, "lag-per-day")
    assert lags[day_label(today)] == ["4.0 s", "6.0 s"]
    assert lags[day_label(two_days_ago)] == ["—", "—"]
    # the picture is there, accessibly named, beside its table
    assert 'role="img"' in html
    assert "<figcaption" in html


def test_the_payments_page_shows_the_same_payments_per_day_chart(client, db, stored) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, make_user(db, Role.VIEWER).email)
    html = client.get("/payments").text
    assert _table(html, "payments-per-day")[day_label(stored.date())] == ["3"]


def test_a_dashboard_with_no_payments_says_no_data_yet(client, db) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, make_user(db, Role.VIEWER).email)
    html = client.get("/").text
    assert 'data-testid="chart-payments-per-day"' in html
    assert "No data yet" in html


def test_payments_are_counted_on_their_utc_day(db) -> None:  # type: ignore[no-untyped-def]
    """A payment at 23:59:59 UTC belongs to that day and one at 00:00:00 to the next, on
    both back-ends (PostgreSQL's date() would follow the session's time zone)."""
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    _store(db, datetime(2026, 12, 5, 23, 59, 59, tzinfo=UTC), "1.00")
    _store(db, datetime(2026, 12, 6, 0, 0, 0, tzinfo=UTC), "2.00")
    _store(db, datetime(2026, 12, 6, 0, 0, 1, tzinfo=UTC), "2.00")
    with db.read() as session:
        if db.backend == "postgresql":
            session.execute(text("SET TIME ZONE 'America/Los_Angeles'"))
        days = {d.day.isoformat(): d for d in overview.payments_by_day(session, now, days=3)}
    assert [days[d].payments for d in ("2026-12-05", "2026-12-06", "2026-12-07")] == [1, 2, 0]
    assert days["2026-12-06"].amounts == {"USD": 400}


def test_the_sync_page_charts_runs_and_failures_per_day(client, db) -> None:  # type: ignore[no-untyped-def]
    """Today: a clean run, a failed run and a run that finished with a failed record (two
    with failures); yesterday: one clean run."""
    now = datetime.now(UTC)
    with db.transaction() as session:
        ledger = Connection(kind="sbc", name="SBC", settings={})
        session.add(ledger)
        session.flush()

        def run(status: str, created_at: datetime) -> SyncRun:
            made = SyncRun(
                connection_id=ledger.id,
                trigger="manual",
                status=status,
                requested_by="ops@example.org",
                created_at=created_at,
            )
            session.add(made)
            session.flush()
            return made

        run("finished", now)
        run("failed", now)
        partly = run("finished", now)
        for key, status in (("1", "failed"), ("2", "failed"), ("3", "ok")):
            session.add(
                SyncRecord(
                    run_id=partly.id,
                    data_set="member_details",
                    record_key=key,
                    direction="to_ledger",
                    action="update",
                    status=status,
                )
            )
        run("finished", now - timedelta(days=1))
    sign_in(client, make_user(db, Role.VIEWER).email)
    html = client.get("/sync").text

    runs = _table(html, "sync-runs-per-day")
    assert len(runs) == 14
    assert runs[day_label(now.date())] == ["3", "2"]
    assert runs[day_label(now.date() - timedelta(days=1))] == ["1", "0"]
    assert runs[day_label(now.date() - timedelta(days=2))] == ["0", "0"]


def _batch(scope_id: int, number: str, settled_on: date, net: int) -> ReconBatch:
    return ReconBatch(
        scope_id=scope_id,
        batch_number=number,
        settled_on=settled_on,
        gross_minor=net,
        net_minor=net,
        currency="USD",
    )


def _in_transit(
    scope_id: int, key: str, days: int, amount: int, status: str = "open"
) -> ReconBreak:
    return ReconBreak(
        scope_id=scope_id,
        break_id=f"deposit_in_transit:{key}",
        type="deposit_in_transit",
        side="batches",
        amount_minor=amount,
        currency="USD",
        as_of_days=days,
        occurred_on=date(2026, 11, 20),
        status=status,
    )


def test_the_reconciliation_page_charts_cash_by_day_and_deposits_in_transit(client, db) -> None:  # type: ignore[no-untyped-def]
    """November: $55.50 settled on the 13th (two batches) and $25.00 on the 20th; the
    bank shows $40.00 deposited on the 14th (a debit and a December credit not counted);
    open deposits in transit of 1, 4 and 12 days (a resolved one not counted)."""
    with db.transaction() as session:
        gateway = Connection(kind="paytrace", name="PayTrace", settings={})
        ledger = Connection(kind="sbc", name="SBC", settings={}, is_active=True)
        session.add_all([gateway, ledger])
        session.flush()
        scope = ensure_scope(session, gateway.id, ledger.id, actor="test")
        scope_id = scope.id
        statement = ReconStatement(
            scope_id=scope_id,
            fingerprint="f" * 64,
            format="ofx",
            currency="USD",
            period_start=date(2026, 11, 1),
            period_end=date(2026, 12, 2),
            imported_by="ops@example.org",
        )
        session.add_all(
            [
                _batch(scope_id, "1", date(2026, 11, 13), 4000),
                _batch(scope_id, "2", date(2026, 11, 13), 1550),
                _batch(scope_id, "3", date(2026, 11, 20), 2500),
                _batch(scope_id, "4", date(2026, 12, 1), 9900),
                statement,
            ]
        )
        session.flush()
        for n, (booked_on, amount) in enumerate(
            [(date(2026, 11, 14), 4000), (date(2026, 11, 14), -300), (date(2026, 12, 2), 9900)]
        ):
            session.add(
                ReconStatementLine(
                    statement_id=statement.id,
                    line_id=f"ffffffffffff:{n}",
                    line_no=n,
                    booked_on=booked_on,
                    amount_minor=amount,
                    currency="USD",
                )
            )
        session.add_all(
            [
                _in_transit(scope_id, "2", 1, 1550),
                _in_transit(scope_id, "3", 4, 2500),
                _in_transit(scope_id, "9", 12, 700),
                _in_transit(scope_id, "8", 3, 5000, status="resolved"),
            ]
        )
    sign_in(client, make_user(db, Role.VIEWER).email)
    html = client.get(f"/recon/{scope_id}?period=2026-11").text

    # the picture has every day of November; the table the days with cash
    assert len(re.findall(r'<rect[^>]*data-series="Settled"', html)) == 30
    assert _table(html, "cash-by-day") == {
        "Nov 13": ["$55.50", "$0.00"],
        "Nov 14": ["$0.00", "$40.00"],
        "Nov 20": ["$25.00", "$0.00"],
    }

    transit = _table(html, "in-transit-by-age")
    assert transit == {
        "0-2 days": ["$15.50"],
        "3-5 days": ["$25.00"],
        "6-10 days": ["$0.00"],
        "over 10 days": ["$7.00"],
    }
