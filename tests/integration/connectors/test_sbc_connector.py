"""The SBC connector against the SBC simulator over real HTTP: the portal's Connect to Sage,
token rotation (also across processes), reads, writes, typed errors, and exactly-once
writes under injected faults."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ledgerlink import demo
from ledgerlink.connectors.errors import AuthExpired, Rejected, UpstreamError
from ledgerlink.connectors.factory import ledger_for, sbc_token_vault
from ledgerlink.connectors.http import RetryPolicy
from ledgerlink.connectors.sbc import references
from ledgerlink.connectors.sbc.ledger import SbcLedger
from ledgerlink.domain.accounts import Address, Application, CustomerDraft, ReceiptRequest
from ledgerlink.domain.money import Money
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.members import linking, registry
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.faults import FaultInjector, FaultPlan
from ledgerlink.sandbox.sbc import LEAD_BUSINESS_ID, SbcConfig
from ledgerlink.sandbox.supervisor import SimulatorAddress
from ledgerlink.settings import Settings
from ledgerlink.store.mapping_repo import MappingRepository
from ledgerlink.store.models import Connection
from ledgerlink.sync import runs
from tests.support import sbc_refresh_worker
from tests.support.members import add_levels, add_member
from tests.support.sbc import SbcClient, connect_ledgerlink, running_sbc
from tests.support.web import make_user, sign_in

ME = cli_principal()
FAST_RETRIES = RetryPolicy(attempts=8, total_seconds=60, wait_initial=0.01, wait_max=0.2)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[str, FaultInjector]]:
    injector = FaultInjector()
    config = SbcConfig(rate_limit_per_minute=0, seed_people=60)
    with running_sbc(tmp_path / "sbc", config, injector) as (base_url, _):
        yield base_url, injector


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    from ledgerlink.store.migrate import upgrade

    runtime = Runtime(settings)
    upgrade(runtime.db)
    yield runtime
    runtime.db.dispose()


def _state(base_url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{base_url}/_sandbox/state").json())


def _connection(runtime: Runtime, connection_id: int) -> Connection:
    with runtime.db.read() as session:
        connection = session.get(Connection, connection_id)
        assert connection is not None
        session.expunge(connection)
        return connection


def _ledger(runtime: Runtime, connection_id: int) -> SbcLedger:
    ledger = ledger_for(runtime, _connection(runtime, connection_id))
    assert isinstance(ledger, SbcLedger)
    ledger.client.policy = FAST_RETRIES
    return ledger


# -- Connect to Sage, through the portal -------------------------------------------------------


def test_connect_to_sage_runs_the_consent_flow_and_stores_the_tokens(
    client: TestClient, sandbox: tuple[str, FaultInjector]
) -> None:
    base_url, _ = sandbox
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    admin = make_user(runtime.db, Role.ADMIN)
    token = sign_in(client, admin.email)
    where = {"sbc": SimulatorAddress("sbc", base_url)}
    with runtime.db.transaction() as session:
        demo.ensure_connections(runtime, session, demo.sandbox_connections(runtime, where))
        connection_id = session.scalars(select(Connection.id)).one()
    started = client.post(
        f"/connections/{connection_id}/sbc/connect",
        data={"csrftoken": token},
        follow_redirects=False,
    )
    assert started.status_code == 303
    consent_url = started.headers["location"]
    assert consent_url.startswith(f"{base_url}/oauth2/auth/central?")
    page = httpx.get(consent_url)
    assert page.status_code == 200
    assert "Allow" in page.text
    query = dict(httpx.URL(consent_url).params)
    allowed = httpx.post(
        f"{base_url}/oauth2/auth/central/decision",
        data={"redirect_uri": query["redirect_uri"], "state": query["state"], "decision": "allow"},
    )
    back = urlsplit(allowed.headers["location"])
    done = client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"].endswith("done=connected")
    assert _connection(runtime, connection_id).auth_status == "connected"
    assert _state(base_url)["token_requests"] == {"authorization_code": 1}
    results = asyncio.run(_ledger(runtime, connection_id).check())
    assert all(r.ok for r in results), results


def test_a_tampered_state_is_refused(
    client: TestClient, sandbox: tuple[str, FaultInjector]
) -> None:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    sign_in(client, make_user(runtime.db, Role.ADMIN).email)
    response = client.get("/connections/sbc/callback?state=forged.state&code=abc")
    assert response.status_code == 400
    assert "could not be verified" in response.text


# -- tokens ----------------------------------------------------------------------------------


def test_an_expired_access_token_is_refreshed_and_the_rotated_refresh_token_kept(
    runtime: Runtime, sandbox: tuple[str, FaultInjector]
) -> None:
    base_url, _ = sandbox
    connection_id = connect_ledgerlink(runtime, base_url)
    httpx.post(f"{base_url}/_sandbox/expire_tokens", json={})
    for _ in range(2):  # the second refresh only works if the first rotation was stored
        httpx.post(f"{base_url}/_sandbox/expire_tokens", json={})
        names = asyncio.run(_read_businesses(runtime, connection_id))
        assert "Lakeside Members Association" in names
    counts = _state(base_url)["token_requests"]
    assert counts.get("refresh_token") == 2
    assert "invalid_grant" not in counts


async def _read_businesses(runtime: Runtime, connection_id: int) -> list[str]:
    async with _ledger(runtime, connection_id) as ledger:
        return [b["name"] for b in await ledger.businesses()]


def test_a_revoked_refresh_token_marks_the_connection_for_reauthorisation(
    runtime: Runtime, sandbox: tuple[str, FaultInjector]
) -> None:
    base_url, _ = sandbox
    connection_id = connect_ledgerlink(runtime, base_url)
    httpx.post(f"{base_url}/_sandbox/expire_tokens", json={"revoke_refresh_tokens": True})
    with pytest.raises(AuthExpired) as expired:
        asyncio.run(_read_businesses(runtime, connection_id))
    assert "Connect to Sage" in expired.value.message
    connection = _connection(runtime, connection_id)
    assert connection.auth_status == "needs_reauthorisation"
    assert _state(base_url)["token_requests"]["invalid_grant"] == 1  # asked once, not retried


@pytest.mark.slow  # six worker processes
def test_processes_refreshing_at_once_refresh_once_and_lose_nothing(
    settings: Settings, runtime: Runtime, sandbox: tuple[str, FaultInjector]
) -> None:
    base_url, _ = sandbox
    connection_id = connect_ledgerlink(runtime, base_url)
    httpx.post(f"{base_url}/_sandbox/expire_tokens", json={})
    context = multiprocessing.get_context("spawn")
    workers = 6
    barrier = context.Barrier(workers)
    options = {
        "var_dir": str(settings.var_dir),
        "database_url": settings.resolved_database_url,
        "vault_keys": settings.vault_keys,
    }
    results = context.Queue()
    processes = [
        context.Process(
            target=sbc_refresh_worker.main, args=(options, connection_id, barrier, results)
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    tokens = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert not [t for t in tokens if t.startswith("error")], tokens
    assert len(set(tokens)) == 1  # everyone uses the one refreshed token
    counts = _state(base_url)["token_requests"]
    assert counts.get("refresh_token") == 1
    assert "invalid_grant" not in counts
    httpx.post(f"{base_url}/_sandbox/expire_tokens", json={})
    vault = sbc_token_vault(runtime, _connection(runtime, connection_id))
    assert vault.renew_after_rejection(tokens[0]) not in tokens  # the stored refresh token works
    assert _state(base_url)["token_requests"]["refresh_token"] == 2


# -- reads and writes -------------------------------------------------------------------------


def test_reads_page_through_every_contact_and_invoice(
    runtime: Runtime, sandbox: tuple[str, FaultInjector]
) -> None:
    base_url, _ = sandbox
    connection_id = connect_ledgerlink(runtime, base_url)
    observer = SbcClient(base_url, SbcConfig()).connect()

    async def read() -> tuple[int, int, list[str]]:
        async with _ledger(runtime, connection_id) as ledger:
            customers = [c async for c in ledger.customers()]
            first = customers[0]
            invoices = [i async for i in ledger.invoices(customer_id=first.id, open_only=False)]
            accounts = [a["displayed_as"] for a in await ledger.lookup("bank_accounts")]
            return len(customers), len(invoices), accounts

    customers, invoices, accounts = asyncio.run(read())
    assert customers == observer.ok("/contacts", contact_type_id="CUSTOMER")["$total"]
    assert invoices >= 1
    assert "Card Clearing (1010)" in accounts


def test_changed_since_returns_changes_and_deletions(
    runtime: Runtime, sandbox: tuple[str, FaultInjector]
) -> None:
    base_url, _ = sandbox
    connection_id = connect_ledgerlink(runtime, base_url)
    observer = SbcClient(base_url, SbcConfig()).connect()
    from datetime import UTC, datetime

    since = datetime.now(UTC)
    fresh = observer.created(
        "/contacts", "contact", {"name": "Changed Later", "contact_type_ids": ["CUSTOMER"]}
    )
    gone = observer.created(
        "/contacts", "contact", {"name": "Deleted Later", "contact_type_ids": ["CUSTOMER"]}
    )
    observer.delete(f"/contacts/{gone['id']}")

    async def read() -> list[tuple[str, bool]]:
        async with _ledger(runtime, connection_id) as ledger:
            return [(c.id, c.deleted) async for c in ledger.customers(changed_since=since)]

    assert sorted(asyncio.run(read())) == sorted([(fresh["id"], False), (gone["id"], True)])


def test_sage_refusals_become_messages_naming_the_record_and_field(
    runtime: Runtime, sandbox: tuple[str, FaultInjector]
) -> None:
    base_url, _ = sandbox
    connection_id = connect_ledgerlink(runtime, base_url)

    async def create() -> None:
        async with _ledger(runtime, connection_id) as ledger:
            await ledger.create_customer(CustomerDraft(number="M00001", name="Taken Ref"), "k-1")

    with pytest.raises(Rejected) as refused:
        asyncio.run(create())
    assert (
        refused.value.message
        == "Sage rejected the contact 'Taken Ref': reference has already been taken"
    )
    assert refused.value.field == "reference"


def test_a_receipt_is_applied_and_a_repeat_is_a_replay(
    runtime: Runtime, sandbox: tuple[str, FaultInjector]
) -> None:
    base_url, _ = sandbox
    connection_id = connect_ledgerlink(runtime, base_url)

    async def pay() -> tuple[Any, Any, Any]:
        async with _ledger(runtime, connection_id) as ledger:
            customer = await ledger.find_customer("M00001")
            assert customer is not None
            invoice = await _first(ledger.invoices(customer_id=customer.id))
            request = ReceiptRequest(
                idempotency_key="paytrace:777:sale",
                customer_id=customer.id,
                date=date.today(),
                amount=invoice.outstanding,
                applications=(Application(invoice.id, invoice.outstanding),),
                reference="PayTrace 777",
            )
            first = await ledger.post_receipt(request)
            again = await ledger.post_receipt(request)
            after = await _first(
                ledger.invoices(customer_id=customer.id, open_only=False),
                lambda i: i.id == invoice.id,
            )
            return first, again, after

    first, again, after = asyncio.run(pay())
    assert (first.replayed, again.replayed, first.id) == (False, True, again.id)
    assert after.outstanding.is_zero
    assert after.status.value == "paid"


# -- exactly once under faults ------------------------------------------------------------------


async def _first(items: Any, wanted: Any = None) -> Any:
    """The first item of an async iterator (that ``wanted`` accepts)."""
    async for item in items:
        if wanted is None or wanted(item):
            return item
    raise AssertionError("no such item")


async def _as_a_job_would(call: Any, *args: Any) -> Any:
    """Retry a call whose retries ran out on a retryable error, as the job runner does
    later (with the same idempotency key): the outcome must still be exactly once."""
    for _ in range(5):
        try:
            return await call(*args)
        except UpstreamError as exc:
            if not exc.retryable:
                raise
    return await call(*args)


@pytest.mark.slow  # 4,000 writes through injected faults
def test_2000_contacts_and_2000_receipts_land_exactly_once_under_faults(
    runtime: Runtime, sandbox: tuple[str, FaultInjector]
) -> None:
    base_url, injector = sandbox
    connection_id = connect_ledgerlink(runtime, base_url)
    observer = SbcClient(base_url, SbcConfig()).connect()
    observer.business = LEAD_BUSINESS_ID
    injector.replace(
        FaultPlan(
            seed=20,
            error_rate=0.15,
            error_status=503,
            lost_reply_rate=0.05,  # written, but the reply never arrives
            rate_limit_rate=0.05,
            retry_after_seconds=None,
            jitter_ms=5,
            exempt_paths=injector.plan.exempt_paths,
        )
    )
    count = 2000

    async def write_all() -> None:
        async with _ledger(runtime, connection_id) as ledger:
            semaphore = asyncio.Semaphore(32)

            async def contact(n: int) -> str:
                async with semaphore:
                    draft = CustomerDraft(
                        number=f"X{n:06d}",
                        name=f"Load Person {n}",
                        email=f"load{n}@example.org",
                        address=Address(city="Austin", country="US"),
                    )
                    created = await _as_a_job_would(
                        ledger.create_customer, draft, f"load-contact:{n}"
                    )
                    return str(created.id)

            ids = await asyncio.gather(*(contact(n) for n in range(count)))

            async def receipt(n: int) -> None:
                async with semaphore:
                    await _as_a_job_would(
                        ledger.post_receipt,
                        ReceiptRequest(
                            idempotency_key=f"load-receipt:{n}",
                            customer_id=ids[n],
                            date=date.today(),
                            amount=Money.parse(f"{1 + n % 90}.{n % 100:02d}", "USD"),
                            reference=f"LOAD {n}",
                        ),
                    )

            await asyncio.gather(*(receipt(n) for n in range(count)))

    asyncio.run(write_all())
    faults = dict(injector.counts)
    injector.replace(FaultPlan(exempt_paths=injector.plan.exempt_paths))
    contacts = observer.all_items(
        "/contacts", items_per_page=200, search="Load Person", attributes="reference"
    )
    assert len(contacts) == count == len({c["reference"] for c in contacts})
    receipts = observer.all_items(
        "/contact_payments", items_per_page=200, search="LOAD ", attributes="reference"
    )
    assert len(receipts) == count == len({r["reference"] for r in receipts})
    # the faults did happen, in the proportions asked for
    assert faults["lost_reply"] > 100
    assert faults["error"] > 400
    assert faults["rate_limited"] > 100


def test_invoices_allocations_refunds_and_reversals_keep_the_books_right(
    runtime: Runtime, sandbox: tuple[str, FaultInjector]
) -> None:
    from ledgerlink.connectors.sbc.shapes import InvoiceLine
    from ledgerlink.domain.accounts import RefundRequest

    base_url, _ = sandbox
    connection_id = connect_ledgerlink(runtime, base_url)
    observer = SbcClient(base_url, SbcConfig()).connect()
    dues_account = observer.sales_account_id()
    usd = lambda text: Money.parse(text, "USD")  # noqa: E731

    async def books() -> dict[str, Any]:
        async with _ledger(runtime, connection_id) as ledger:
            customer = await ledger.create_customer(
                CustomerDraft(number="M07000", name="Books Person"), "bp"
            )
            line = InvoiceLine("Annual dues", dues_account, usd("120.00"))
            invoice = await ledger.create_invoice(
                customer.id, date.today(), [line], "dues:M07000:2026"
            )
            again = await ledger.create_invoice(
                customer.id, date.today(), [line], "dues:M07000:2026"
            )
            on_account = await ledger.post_receipt(
                ReceiptRequest("card:1", customer.id, date.today(), usd("50.00"), reference="PT 1")
            )
            await ledger.allocate(
                customer.id,
                date.today(),
                [(invoice.id, usd("30.00")), (on_account.id, usd("-30.00"))],
            )
            refund = await ledger.post_refund(
                RefundRequest(
                    "card:1:refund",
                    customer.id,
                    date.today(),
                    usd("20.00"),
                    applications=(Application(on_account.id, usd("20.00")),),
                )
            )
            paid = await ledger.post_receipt(
                ReceiptRequest(
                    "card:2",
                    customer.id,
                    date.today(),
                    usd("90.00"),
                    applications=(Application(invoice.id, usd("90.00")),),
                )
            )
            settled = await _first(ledger.invoices(customer_id=customer.id, open_only=False))
            await ledger.reverse_receipt(paid.id)  # a chargeback
            await ledger.reverse_receipt(paid.id)  # repeated: already gone, still fine
            reopened = await _first(ledger.invoices(customer_id=customer.id, open_only=False))
            final = await ledger.get_customer(customer.id)
            return {
                "invoice": invoice,
                "again": again,
                "refund": refund,
                "settled": settled,
                "reopened": reopened,
                "balance": final.balance,
            }

    result = asyncio.run(books())
    assert result["again"].id == result["invoice"].id  # the idempotency key held
    assert result["settled"].outstanding.is_zero
    assert result["reopened"].outstanding == Money.parse("90.00", "USD")
    # 120 invoiced - 50 received + 20 refunded; the reversed 90 no longer counts
    assert result["balance"] == Money.parse("90.00", "USD")


# -- member numbers longer than a contact reference holds (10 characters) -------------------

LONG_NUMBER = "M123456789012"  # 13 characters: SBC's Contact.reference holds 10


def _contact_holding(observer: SbcClient, reference: str) -> dict[str, Any]:
    [found] = [
        c
        for c in observer.all_items("/contacts", search=reference, attributes="all")
        if c["reference"] == reference
    ]
    return dict(found)


def test_a_long_member_number_links_syncs_and_is_found_again(
    runtime: Runtime, sandbox: tuple[str, FaultInjector]
) -> None:
    base_url, _ = sandbox
    add_levels(runtime.db)
    add_member(runtime.db, LONG_NUMBER, "Lena", "Longnumber", email="lena@example.org")
    connection_id = connect_ledgerlink(runtime, base_url)
    observer = SbcClient(base_url, SbcConfig()).connect()

    async def link() -> linking.LinkOutcome:
        async with _ledger(runtime, connection_id) as ledger:
            return await linking.create_and_link(
                runtime.db, ME, ledger, LONG_NUMBER, connection_id, mappings=MappingRepository(None)
            )

    created = asyncio.run(link())
    assert created.action == "created"
    assert created.customer.number == LONG_NUMBER
    contact = _contact_holding(observer, references.short_reference(LONG_NUMBER))
    assert contact["id"] == created.customer.id
    assert len(contact["reference"]) <= 10
    assert f"Member number: {LONG_NUMBER}" in contact["notes"].splitlines()
    assert asyncio.run(link()).action == "already_linked"

    async def find() -> tuple[Any, list[str]]:
        async with _ledger(runtime, connection_id) as ledger:
            found = await ledger.find_customer(LONG_NUMBER)
            listed = [c.id async for c in ledger.customers() if c.number == LONG_NUMBER]
            return found, listed

    found, listed = asyncio.run(find())
    assert found is not None
    assert (found.id, found.number, listed) == (contact["id"], LONG_NUMBER, [contact["id"]])

    # a registry change reaches Sage through the sync; the contact keeps its reference
    with runtime.db.transaction() as session:
        member = registry.load_member(session, registry.get_member(session, LONG_NUMBER))
        registry.update_member(session, ME, LONG_NUMBER, replace(member, email="lena@new.org"))
    with runtime.db.transaction() as session:
        run_id = runs.start(session, None, ME, connection_id, ["member_details"]).id

    async def sync() -> Any:
        async with _ledger(runtime, connection_id) as ledger:
            return await runs.execute(
                runtime.db, run_id, ledger, ME, mappings=MappingRepository(None)
            )

    run = asyncio.run(sync())
    assert (run.status, run.counts.get("failed", 0)) == ("finished", 0)
    synced = observer.ok(f"/contacts/{contact['id']}")
    assert (synced["email"], synced["reference"]) == ("lena@new.org", contact["reference"])
    assert f"Member number: {LONG_NUMBER}" in synced["notes"].splitlines()
    found_again, _ = asyncio.run(find())
    assert found_again is not None
    assert found_again.id == contact["id"]


def test_a_short_reference_held_by_another_contact_moves_to_the_next_one(
    runtime: Runtime, sandbox: tuple[str, FaultInjector]
) -> None:
    base_url, _ = sandbox
    connection_id = connect_ledgerlink(runtime, base_url)
    observer = SbcClient(base_url, SbcConfig()).connect()
    first, second, *_ = references.candidates(LONG_NUMBER)
    typed_by_hand = observer.created(
        "/contacts",
        "contact",
        {"name": "Someone Else", "contact_type_ids": ["CUSTOMER"], "reference": first},
    )

    async def create_and_find() -> tuple[Any, Any]:
        async with _ledger(runtime, connection_id) as ledger:
            made = await ledger.create_customer(
                CustomerDraft(number=LONG_NUMBER, name="Lena Longnumber"), "long-1"
            )
            return made, await ledger.find_customer(LONG_NUMBER)

    made, found = asyncio.run(create_and_find())
    assert made.number == LONG_NUMBER
    assert _contact_holding(observer, second)["id"] == made.id
    assert found is not None
    assert found.id == made.id != typed_by_hand["id"]
    assert observer.ok(f"/contacts/{typed_by_hand['id']}")["reference"] == first


def test_updating_a_long_number_contact_keeps_what_a_user_wrote_in_its_notes(
    runtime: Runtime, sandbox: tuple[str, FaultInjector]
) -> None:
    base_url, _ = sandbox
    connection_id = connect_ledgerlink(runtime, base_url)
    observer = SbcClient(base_url, SbcConfig()).connect()
    draft = CustomerDraft(number=LONG_NUMBER, name="Lena Longnumber")

    async def create() -> Any:
        async with _ledger(runtime, connection_id) as ledger:
            return await ledger.create_customer(draft, "long-2")

    made = asyncio.run(create())
    notes = observer.ok(f"/contacts/{made.id}")["notes"]
    written = observer.put(f"/contacts/{made.id}", "contact", {"notes": f"{notes}\nPrefers e-mail"})
    assert written.status_code == 200, written.text

    async def update() -> Any:
        async with _ledger(runtime, connection_id) as ledger:
            return await ledger.update_customer(made.id, replace(draft, email="lena@new.org"))

    updated = asyncio.run(update())
    after = observer.ok(f"/contacts/{made.id}")
    assert (updated.number, after["email"]) == (LONG_NUMBER, "lena@new.org")
    assert after["notes"].splitlines() == [f"Member number: {LONG_NUMBER}", "Prefers e-mail"]
    assert after["reference"] == references.short_reference(LONG_NUMBER)
