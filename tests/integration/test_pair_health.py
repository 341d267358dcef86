"""Each integration pair's health, on the dashboard and in the API, for a viewer too: with
many PayTrace accounts and ledgers in one installation, the pair in trouble stands out on
its own line with what it posted, what waits, how long, and the latest problem in words."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from sqlalchemy import insert

from ledgerlink import connections
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.runtime import Runtime
from ledgerlink.store.db import Database
from ledgerlink.store.payment_models import PaymentEvent, PaymentPollState
from ledgerlink.store.types import utcnow
from tests.support.web import make_user, sign_in

ME = cli_principal()


def _pair(runtime: Runtime, session: object, n: str) -> tuple[int, int]:
    ledger = connections.create(
        session,  # type: ignore[arg-type]
        runtime.vault,
        ME,
        kind="sage500",
        name=f"Sage 500 {n}",
        settings={"company_id": n, "receipt_gl_account": "1010-00"},
        secrets={"database_url": "sqlite:///nowhere.sqlite3"},
    )
    gateway = connections.create(
        session,  # type: ignore[arg-type]
        runtime.vault,
        ME,
        kind="paytrace",
        name=f"PayTrace {n}",
        settings={"username": f"merchant-{n}", "post_to_connection_id": ledger.id},
        secrets={"password": "pw"},
    )
    return int(gateway.id), int(ledger.id)


def _events(db: Database, gateway: int, *rows: tuple[str, timedelta, dict[str, object]]) -> None:
    """Events of one pair: (status, received how long ago, other columns)."""
    now = utcnow()
    with db.transaction() as session:
        for status, ago, extra in rows:
            session.execute(
                insert(PaymentEvent).values(
                    connection_id=gateway,
                    source="poller",
                    transaction_id=str(hash((gateway, status, ago, len(extra))) % 10**9),
                    kind="sale",
                    dedup_key=f"{gateway}:{status}:{ago.total_seconds()}:{len(extra)}",
                    payload={},
                    verified=True,
                    status=status,
                    received_at=now - ago,
                    **extra,
                )
            )


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_each_pair_shows_its_own_posted_waiting_oldest_and_problem(client, settings, db) -> None:  # type: ignore[no-untyped-def]
    runtime = Runtime(settings)
    with db.transaction() as session:
        east, _ = _pair(runtime, session, "EST")
        west, _ = _pair(runtime, session, "WST")
    now = utcnow()
    minute = timedelta(minutes=1)
    posted = {"processed_at": now - 5 * minute}
    _events(
        db,
        east,
        ("posted", 10 * minute, posted),
        ("posted", 9 * minute, posted),
        ("posted", 8 * minute, posted),
        ("posted", 3 * 60 * minute, {"processed_at": now - 3 * 60 * minute}),  # not this hour
        ("received", timedelta(seconds=1), {}),
    )
    _events(
        db,
        west,
        ("posted", 30 * minute, {"processed_at": now - 29 * minute}),
        (
            "received",
            20 * minute,
            {"attempts": 3, "message": "Sage 500 did not answer in time (trying again)"},
        ),
        ("processing", 2 * minute, {"attempts": 1, "claimed_until": now + minute}),
    )
    with db.transaction() as session:
        session.add(
            PaymentPollState(
                connection_id=east, last_run_at=now, last_found=1, last_error=None, batches_seen={}
            )
        )

    viewer = make_user(db, Role.VIEWER)
    pairs = client.get(
        "/api/v1/payments/pairs", headers={"Authorization": f"Bearer {viewer.token}"}
    )
    assert pairs.status_code == 200, pairs.text
    by_gateway = {p["gateway_id"]: p for p in pairs.json()}
    shown = ("ledger", "posted_last_hour", "waiting", "status")
    assert {k: by_gateway[east][k] for k in shown} == {
        "ledger": "Sage 500 EST",
        "posted_last_hour": 3,
        "waiting": 1,
        "status": "ok",
    }
    assert by_gateway[east]["last_error"] == ""
    slow = by_gateway[west]
    assert (slow["posted_last_hour"], slow["waiting"], slow["status"]) == (1, 2, "failing")
    assert 20 * 60 <= slow["oldest_waiting_seconds"] < 21 * 60
    assert slow["last_error"] == "Sage 500 did not answer in time (trying again)"
    assert "waited 20 min" in slow["status_detail"]

    sign_in(client, viewer.email)
    page = client.get("/")
    assert page.status_code == 200
    table = page.text.split('data-testid="pair-health"', 1)[1].split("</table>", 1)[0]
    rows = {
        gateway: _text(table.split(f'data-testid="pair-{gateway}"', 1)[1].split("</tr>", 1)[0])
        for gateway in (east, west)
    }
    assert rows[east].startswith("> PayTrace EST → Sage 500 EST ok Payments are posted")
    assert re.search(r" 3 1 \d+ s —$", rows[east]), rows[east]  # posted, waiting, seconds
    assert "PayTrace WST → Sage 500 WST failing Payments have waited 20 min" in rows[west]
    assert rows[west].endswith("1 2 20 min Sage 500 did not answer in time (trying again)")


def test_an_installation_without_paytrace_says_how_to_add_a_pair(client, db) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, make_user(db, Role.VIEWER).email)
    page = client.get("/").text
    assert 'data-testid="pair-health-none"' in page
    assert "add one under Accounting Integration" in _text(page)
