"""What the soak runs against: the SBC and PayTrace simulators, their seeded state, and
ledgerlink's installation on PostgreSQL (connections, members and their links).

The integration pairs are ``G`` PayTrace connections ("merchant accounts") posting to ``L``
SBC connections ("ledger companies", one SBC business each): gateway ``g`` posts to ledger
``g % L``. The PayTrace simulator has one API account, so the gateways share its
credentials and transactions; what makes them separate pairs is ledgerlink's side (a
connection each, its own inbound URL, webhook secret and posting ledger). Each ledger
business gets a few customers with one large open invoice each, so every 5-cent card
sale of the soak has an invoice to pay. The members the sync pushes live in the lead
business (``bench/sync_bulk.py``'s set-up: one contact per member, e-mail out of date).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from payments import WEBHOOK_SECRET  # type: ignore[import-not-found]
from sync_bulk import prepare_registry  # type: ignore[import-not-found]

from ledgerlink import connections
from ledgerlink.connectors.factory import sbc_redirect_uri, sbc_token_vault
from ledgerlink.identity.principal import cli_principal
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.paytrace import PayTraceConfig
from ledgerlink.sandbox.sbc import LEAD_BUSINESS_ID, SbcConfig
from ledgerlink.sandbox.sbc.books import Books
from ledgerlink.sandbox.sbc.seed import (
    SECOND_BUSINESS_ID,
    _account,
    _reference_data,
    seed,
)
from ledgerlink.sandbox.sbc.store import Store
from ledgerlink.settings import Settings
from ledgerlink.store.migrate import upgrade
from ledgerlink.store.models import Connection

#: Customers (each with one large open invoice) per ledger business.
CUSTOMERS_PER_LEDGER = 4
INVOICE_TOTAL = "1000000.00"
SALE_AMOUNT = "0.05"


@dataclass
class Pairs:
    gateways: int
    ledgers: int

    @classmethod
    def parse(cls, text: str) -> Pairs:
        left, sep, right = text.lower().replace("\u00d7", "x").partition("x")
        try:
            pairs = cls(int(left), int(right) if sep else int(left))
        except ValueError:
            raise SystemExit(
                f"--pairs {text!r}: write GATEWAYSxLEDGERS, e.g. 10x10 or 1x1"
            ) from None
        if pairs.gateways < 1 or pairs.ledgers < 1:
            raise SystemExit(f"--pairs {text!r}: at least one gateway and one ledger")
        return pairs


@dataclass
class World:
    """Ids and addresses the soak needs once everything is set up."""

    sbc_url: str
    paytrace_url: str
    state_dir: Path  # the SBC simulator's state (counted at the end)
    ledger_ids: list[int]
    business_ids: list[str]
    gateway_ids: list[int]
    #: gateway connection id -> invoice numbers of its ledger business
    invoices: dict[int, list[str]]
    members: int
    simulators: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


def start_simulator(
    system: str, port: int, var_dir: Path, settings: list[str], logs: Path
) -> subprocess.Popen[bytes]:
    """``ledgerlink sandbox serve`` as ``bench/sandbox_throughput.py`` starts it, with its
    output in ``logs`` and more time to load (a simulator holding 100,000 contacts on a
    busy machine takes over a minute)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINK_")}
    env.update(LEDGERLINK_VAR_DIR=str(var_dir), LEDGERLINK_LOG_LEVEL="warning")
    args = [sys.executable, "-m", "ledgerlink.cli", "sandbox", "serve", system]
    args += ["--port", str(port)]
    for setting in settings:
        args += ["--set", setting]
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{system}.log").open("ab") as log:
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {system} simulator ended at start; see {logs}/{system}.log")
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sandbox/faults", timeout=2)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the {system} simulator did not start in 300 s; see {logs}")


def business_id(n: int) -> str:
    """SBC business ids are 32 hex characters: the two seeded ones, then made-up ones."""
    if n == 0:
        return LEAD_BUSINESS_ID
    if n == 1:
        return SECOND_BUSINESS_ID
    return f"{n:032x}"


def prepare_sbc_state(state_dir: Path, ledgers: int, members: int) -> list[str]:
    """The SBC simulator's state before it starts: ``ledgers`` businesses with open
    invoices, and one contact per member in the lead business (e-mail out of date).
    Returns the member contacts' ids in member order."""
    store = Store(state_dir)
    books = Books(store)
    seed(books, SbcConfig(seed_people=0))
    today = books.today()
    lockdown = date(today.year - 1, 12, 31)
    for n in range(2, ledgers):
        with store.unit():
            books._touch(
                store.put(
                    "-",
                    "businesses",
                    {
                        "id": business_id(n),
                        "name": f"Soak company {n + 1}",
                        "displayed_as": f"Soak company {n + 1}",
                        "is_demo": False,
                        "lead": False,
                    },
                ),
                created=True,
            )
            _reference_data(books, business_id(n), today)
    for n in range(ledgers):
        business = business_id(n)
        sales = _account(books, business, 4000)
        with store.unit():
            for c in range(CUSTOMERS_PER_LEDGER):
                contact, _ = books.create_contact(
                    business,
                    {
                        "name": f"Soak payer {n + 1}-{c + 1}",
                        "contact_type_ids": ["CUSTOMER"],
                        "reference": f"SK{n:02d}{c:04d}",
                    },
                )
                books.create_invoice(
                    business,
                    {
                        "contact_id": contact["id"],
                        "date": max(
                            today - timedelta(days=5), lockdown + timedelta(days=1)
                        ).isoformat(),
                        "invoice_lines": [
                            {
                                "description": "Soak dues",
                                "ledger_account_id": sales,
                                "quantity": 1,
                                "unit_price": INVOICE_TOTAL,
                            }
                        ],
                    },
                )
    ids: list[str] = []
    for offset in range(0, members, 5000):
        with store.unit():
            for n in range(offset + 1, min(offset + 5000, members) + 1):
                contact, _ = books.create_contact(
                    LEAD_BUSINESS_ID,
                    {
                        "name": f"Given{n} Family{n}",
                        "contact_type_ids": ["CUSTOMER"],
                        "reference": f"M{n:06d}",
                        "email": f"old{n}@example.org",
                    },
                )
                ids.append(contact["id"])
    store.close()
    return ids


def invoice_numbers(state_dir: Path, business: str) -> list[str]:
    store = Store(state_dir)
    try:
        return [
            str(i["invoice_number"])
            for i in store.all(business, "sales_invoices")
            if int(i.get("total_amount", 0)) >= 10**8
        ]
    finally:
        store.close()


def runtime_for(database_url: str, var_dir: Path, vault_keys: str) -> Runtime:
    settings = Settings(
        var_dir=var_dir,
        database_url=database_url,
        vault_keys=vault_keys,
        log_level="warning",
        _env_file=None,  # type: ignore[call-arg]
    )
    return Runtime(settings)


def connect_sbc(runtime: Runtime, base: str, name: str, business: str) -> int:
    """One SBC connection, authorised through the simulator's consent page (as
    ``ledgerlink.demo.connect_sbc_sandbox`` does), on ``business``; returns its id."""
    config = SbcConfig()
    with runtime.db.transaction() as session:
        connection = connections.create(
            session,
            runtime.vault,
            cli_principal(),
            kind="sbc",
            name=name,
            settings={
                "client_id": config.client_id,
                "api_base_url": f"{base}/v3.1",
                "authorize_url": f"{base}/oauth2/auth/central",
                "token_url": f"{base}/token",
                "rate_limit_per_minute": 0,
            },
            secrets={"client_secret": config.client_secret},
        )
        session.flush()
        consent = httpx.post(
            f"{base}/oauth2/auth/central/decision",
            data={"redirect_uri": sbc_redirect_uri(runtime), "state": "soak", "decision": "allow"},
            timeout=30,
        )
        code = httpx.URL(consent.headers["location"]).params["code"]
        vault = sbc_token_vault(runtime, connection)
        tokens = vault.oauth.exchange_code(code)
        vault.store_initial(session, tokens)
        session.flush()
        banks = httpx.get(
            f"{base}/v3.1/bank_accounts",
            params={"attributes": "all"},
            headers={"Authorization": f"Bearer {tokens.access_token}", "X-Business": business},
            timeout=30,
        ).json()["$items"]
        clearing = next((b for b in banks if "Card" in b["displayed_as"]), banks[0])
        connections.update(
            session,
            runtime.vault,
            cli_principal(),
            connection,
            settings={"business_id": business, "receipt_bank_account_id": clearing["id"]},
            is_active=True,
        )
        session.flush()
        return int(connection.id)


def build(
    tmp: Path,
    database_url: str,
    vault_keys: str,
    pairs: Pairs,
    members: int,
    ports: dict[str, int],
) -> World:
    """Seed and start the simulators, migrate ledgerlink's database and configure it."""
    sandbox_var = tmp / "sandbox"
    state_dir = sandbox_var / "sandbox" / "sbc"
    contact_ids = prepare_sbc_state(state_dir, pairs.ledgers, members)
    businesses = [business_id(n) for n in range(pairs.ledgers)]
    invoices_by_business = {b: invoice_numbers(state_dir, b) for b in businesses}
    logs = tmp / "logs"
    simulators = {
        "sbc": start_simulator("sbc", ports["sbc"], sandbox_var, ["rate_limit_per_minute=0"], logs),
    }
    try:
        simulators["paytrace"] = start_simulator(
            "paytrace",
            ports["paytrace"],
            tmp / "paytrace",
            ["duplicate_window_seconds=0", "seed_people=0"],
            logs,
        )
    except BaseException:
        simulators["sbc"].terminate()
        raise
    sbc_url = f"http://127.0.0.1:{ports['sbc']}"
    paytrace_url = f"http://127.0.0.1:{ports['paytrace']}"
    runtime = runtime_for(database_url, tmp / "var", vault_keys)
    try:
        upgrade(runtime.db)
        ledger_ids = [
            connect_sbc(runtime, sbc_url, f"Ledger company {n + 1}", b)
            for n, b in enumerate(businesses)
        ]
        account = PayTraceConfig()
        gateway_ids: list[int] = []
        invoices: dict[int, list[str]] = {}
        with runtime.db.transaction() as session:
            for g in range(pairs.gateways):
                ledger = ledger_ids[g % pairs.ledgers]
                gateway = connections.create(
                    session,
                    runtime.vault,
                    cli_principal(),
                    kind="paytrace",
                    name=f"PayTrace merchant {g + 1}",
                    settings={
                        "username": account.username,
                        "integrator_id": account.integrator_id,
                        "api_base_url": paytrace_url,
                        "post_to_connection_id": ledger,
                        "polling": False,
                    },
                    secrets={"password": account.password, "webhook_secret": WEBHOOK_SECRET},
                )
                session.flush()
                gateway_ids.append(int(gateway.id))
                invoices[int(gateway.id)] = invoices_by_business[businesses[g % pairs.ledgers]]
        if members:
            with runtime.db.read() as session:
                lead = session.scalars(
                    select(Connection.id).where(Connection.id == ledger_ids[0])
                ).one()
            prepare_registry(runtime, lead, contact_ids)
    except BaseException:
        for process in simulators.values():
            process.terminate()
        raise
    finally:
        runtime.db.dispose()
    return World(
        sbc_url=sbc_url,
        paytrace_url=paytrace_url,
        state_dir=state_dir,
        ledger_ids=ledger_ids,
        business_ids=businesses,
        gateway_ids=gateway_ids,
        invoices=invoices,
        members=members,
        simulators=simulators,
    )


async def card_sales(world: World, count: int, concurrency: int = 16) -> list[tuple[int, str, str]]:
    """``count`` 5-cent card sales in PayTrace, spread over the gateways (round robin) and
    their ledger's invoices: [(gateway connection id, transaction id, invoice number)]."""
    account = PayTraceConfig()
    gateways = itertools.cycle(world.gateway_ids)
    turns = {g: itertools.cycle(world.invoices[g]) for g in world.gateway_ids}
    wanted = [(g, next(turns[g])) for g in itertools.islice(gateways, count)]
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=world.paytrace_url, timeout=60, limits=limits) as client:
        token = (
            await client.post(
                "/oauth/token",
                data={
                    "grant_type": "password",
                    "username": account.username,
                    "password": account.password,
                },
            )
        ).json()["access_token"]
        limit = asyncio.Semaphore(concurrency)

        async def sale(gateway: int, invoice: str) -> tuple[int, str, str]:
            for attempt in range(5):  # a dropped connection on a busy machine: ask again
                try:
                    return await one_sale(gateway, invoice)
                except httpx.TransportError:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5)
            raise AssertionError("unreachable")

        async def one_sale(gateway: int, invoice: str) -> tuple[int, str, str]:
            async with limit:
                answer = await client.post(
                    "/v1/transactions/sale/keyed",
                    json={
                        "integrator_id": account.integrator_id,
                        "amount": SALE_AMOUNT,
                        "invoice_id": invoice,
                        "credit_card": {
                            "number": "4111111111111111",
                            "expiration_month": "12",
                            "expiration_year": "2030",
                        },
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
                body: dict[str, Any] = answer.json()
                if not body.get("success"):
                    raise RuntimeError(f"PayTrace refused a soak sale: {body}")
                return gateway, str(body["transaction_id"]), invoice

        return list(await asyncio.gather(*(sale(g, i) for g, i in wanted)))
