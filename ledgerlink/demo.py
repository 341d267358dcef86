"""`make demo`: the product on the embedded back-end with the three simulators and demo data.

Everything here is idempotent, so a second `make demo` reuses what the first one made
(users, connections, simulator state under var/).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from ledgerlink import connection_setup, connections
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.connectors.factory import sbc_redirect_uri, sbc_token_vault
from ledgerlink.connectors.http import tls_context
from ledgerlink.connectors.sage500.tables import tarCustomer, tarInvoice
from ledgerlink.identity import users
from ledgerlink.identity.principal import cli_principal, system_principal
from ledgerlink.identity.roles import Role
from ledgerlink.members import bulk, registry
from ledgerlink.payments.jobs import drain
from ledgerlink.payments.poller import poll_due
from ledgerlink.recon.imports import import_statement
from ledgerlink.recon.resolutions import explain
from ledgerlink.recon.runs import default_matcher, run_scope
from ledgerlink.recon.scopes import ensure_default_scopes, get_scope
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.paytrace import PayTraceConfig
from ledgerlink.sandbox.people import population
from ledgerlink.sandbox.sbc import LEAD_BUSINESS_ID, SbcConfig
from ledgerlink.sandbox.statements import WRITERS, Anomalies, BankStatement, deposit_lines
from ledgerlink.sandbox.supervisor import SimulatorAddress
from ledgerlink.store import audit
from ledgerlink.store.member_models import BulkLinkRun, MemberLinkRow, MemberRow
from ledgerlink.store.models import Connection, User
from ledgerlink.store.payment_models import PaymentEvent
from ledgerlink.store.recon_models import ReconBreak, ReconStatement, ReconTransaction
from ledgerlink.tour import progress

PASSWORD = "ledgerlink-demo"  # noqa: S105 - printed on purpose; demo data only
USERS = (
    ("admin@ledgerlink.example", Role.ADMIN, "Demo Administrator"),
    ("operator@ledgerlink.example", Role.OPERATOR, "Demo Operator"),
    ("viewer@ledgerlink.example", Role.VIEWER, "Demo Viewer"),
)


@dataclass(frozen=True)
class DemoConnection:
    kind: str
    name: str
    settings: dict[str, object]
    secrets: dict[str, str]


def sandbox_connections(
    runtime: Runtime, where: dict[str, SimulatorAddress]
) -> list[DemoConnection]:
    """Connections pointing at the running simulators, with their seeded credentials."""
    wanted: list[DemoConnection] = []
    if "sbc" in where:
        sbc, sbc_base = SbcConfig(), where["sbc"].base_url
        wanted.append(
            DemoConnection(
                "sbc",
                "Sage Business Cloud (sandbox)",
                {
                    "client_id": sbc.client_id,
                    "api_base_url": f"{sbc_base}/v3.1",
                    "authorize_url": f"{sbc_base}/oauth2/auth/central",
                    "token_url": f"{sbc_base}/token",
                },
                {"client_secret": sbc.client_secret},
            )
        )
    if "paytrace" in where:
        paytrace = PayTraceConfig()
        wanted.append(
            DemoConnection(
                "paytrace",
                "PayTrace (sandbox)",
                {
                    "username": paytrace.username,
                    "integrator_id": paytrace.integrator_id,
                    "environment": "sandbox",
                    "api_base_url": where["paytrace"].base_url,
                },
                {"password": paytrace.password},
            )
        )
    if "sage500" in where:
        wanted.append(
            DemoConnection(
                "sage500",
                "Sage 500 (sandbox)",
                {
                    "mode": "sql",
                    "company_id": "SOA",
                    "currency": "USD",
                    "receipt_gl_account": "1010-00",
                    "refund_gl_account": "1010-00",
                },
                {"database_url": runtime.settings.sandbox_sage500_url},
            )
        )
    return wanted


def ensure_users(session: Session) -> None:
    """The demo's accounts; they are first-time users, so the guided tour is turned on
    for them (once: an administrator who turns it off in the demo keeps it off)."""
    progress.turn_on_unless_decided(session, cli_principal())
    for email, role, name in USERS:
        if session.scalar(select(User.id).where(User.email == email)) is None:
            users.create_user(
                session,
                cli_principal(),
                email=email,
                password=PASSWORD,
                role=role,
                display_name=name,
            )


def ensure_connections(runtime: Runtime, session: Session, wanted: list[DemoConnection]) -> None:
    for item in wanted:
        if session.scalar(select(Connection.id).where(Connection.name == item.name)) is None:
            connections.create(
                session,
                runtime.vault,
                cli_principal(),
                kind=item.kind,
                name=item.name,
                settings=dict(item.settings),
                secrets=item.secrets,
            )


def connect_sbc_sandbox(runtime: Runtime, where: dict[str, SimulatorAddress]) -> str | None:
    """Authorise the demo's SBC connection as an administrator would with 'Connect to Sage'.

    The simulator's consent page is answered "Allow" over HTTP, the code is exchanged by the
    connector (so the tokens land in the vault exactly as after a real sign-in), and the
    lead business and its card-clearing bank account are chosen. A connection already
    authorised is left alone. Returns a line for the console, or None if there was nothing
    to do.
    """
    if "sbc" not in where:
        return None

    base = where["sbc"].base_url
    with runtime.db.transaction() as session:
        connection = session.scalar(
            select(Connection).where(Connection.name == "Sage Business Cloud (sandbox)")
        )
        if connection is None or connection.auth_status == "connected":
            return None
        try:
            consent = httpx.post(
                f"{base}/oauth2/auth/central/decision",
                data={
                    "redirect_uri": sbc_redirect_uri(runtime),
                    "state": "demo",
                    "decision": "allow",
                },
                timeout=10,
                verify=tls_context(),
            )
            code = httpx.URL(consent.headers["location"]).params["code"]
            vault = sbc_token_vault(runtime, connection)
            tokens = vault.oauth.exchange_code(code)
            vault.store_initial(session, tokens)
            session.flush()
            banks = httpx.get(
                f"{base}/v3.1/bank_accounts",
                params={"attributes": "all"},
                headers={"Authorization": f"Bearer {tokens.access_token}"},
                timeout=10,
                verify=tls_context(),
            ).json()["$items"]
        except (httpx.HTTPError, KeyError, UpstreamError) as exc:
            return (
                f"Could not connect the SBC sandbox automatically ({exc}); use 'Connect to Sage'."
            )

        card_clearing = next((b for b in banks if "Card" in b["displayed_as"]), banks[0])
        connections.update(
            session,
            runtime.vault,
            cli_principal(),
            connection,
            settings={
                "business_id": LEAD_BUSINESS_ID,
                "receipt_bank_account_id": card_clearing["id"],
            },
            is_active=True,
        )
        audit.record(
            session,
            actor=cli_principal().actor,
            action="connection.authorised",
            entity_type="connection",
            entity_id=connection.id,
            after={"auth_status": "connected", "requested_by_id": tokens.requested_by_id},
        )
    return "SBC sandbox connected (lead business, Card Clearing bank account)."


#: Membership levels of the demo population, with the dues the simulators invoice.
LEVELS = (
    ("individual", "Individual", "120.00"),
    ("student", "Student", "45.00"),
    ("family", "Family", "180.00"),
    ("corporate", "Corporate", "950.00"),
    ("life", "Life", "2500.00"),
)


def ensure_members(session: Session, count: int = 240) -> int:
    """The demo population as members (``M00001``…), the same people the simulators hold.

    Runs only on an empty registry, so members added or edited in the demo stay as they
    are. Returns how many members were added.
    """
    if session.scalar(select(func.count()).select_from(MemberRow)):
        return 0
    by = cli_principal()
    existing = registry.levels_by_code(session)
    for code, name, fee in LEVELS:
        if code not in existing:
            registry.create_level(session, by, registry.build_level(code, name, fee, "USD"))
    for person in population(count):
        registry.create_member(
            session,
            by,
            registry.build_member(
                registry.MemberFields(
                    member_number=person.member_number,
                    first_name=person.first_name,
                    last_name=person.last_name,
                    email=person.email,
                    phone=person.phone,
                    membership_level=person.membership_type.lower(),
                    address_line1=person.address_line_1,
                    address_line2=person.address_line_2,
                    city=person.city,
                    region=person.region,
                    postal_code=person.postal_code,
                    country=person.country,
                )
            ),
        )
    return count


def link_demo_members(runtime: Runtime) -> str | None:
    """Start linking every demo member to the SBC sandbox in the background (a bulk
    create-and-link job), so Sync has linked members to work on. Only once: a demo whose
    SBC connection already has links, or a bulk run, is left alone."""
    with runtime.db.transaction() as session:
        connection = session.scalar(
            select(Connection).where(Connection.name == "Sage Business Cloud (sandbox)")
        )
        if connection is None or connection.auth_status != "connected":
            return None
        linked = session.scalar(
            select(func.count())
            .select_from(MemberLinkRow)
            .where(MemberLinkRow.connection_id == connection.id)
        )
        started = session.scalar(
            select(func.count())
            .select_from(BulkLinkRun)
            .where(BulkLinkRun.connection_id == connection.id)
        )
        if linked or started:
            return None
        ids = list(session.scalars(select(MemberRow.id).order_by(MemberRow.id)))
        if not ids:
            return None
        run = bulk.start(session, runtime.jobs, cli_principal(), connection.id, ids, {"demo": True})
        return (
            f"Linking the {len(ids)} demo members to the SBC sandbox in the background "
            f"(Members → bulk run {run.id}; about three minutes at SBC's 100 requests/minute)."
        )


#: The demo's first card payments, by the first customers with a stored card and an open
#: invoice: (amount, or "" for the whole open balance; invoice number, or None for the
#: customer's first open invoice). One names an invoice that does not exist, so the
#: exceptions queue has something to work on; 0.29 is declined by PayTrace's sandbox.
DEMO_PAYMENTS = (
    ("", None),
    ("50.00", None),
    ("", None),
    ("75.00", "0000099999-IN"),
    ("0.29", None),
)


def wire_payments(runtime: Runtime, where: dict[str, SimulatorAddress]) -> str | None:
    """Card payments in the demo post to the Sage 500 sandbox: point the PayTrace
    connection at it, activate both as an administrator's Save would (tested first), and
    (once) make a few payments through the PayTrace sandbox so the Payments page shows
    receipts, a decline and an exception to resolve."""
    if "paytrace" not in where or "sage500" not in where:
        return None
    with runtime.db.transaction() as session:
        gateway = session.scalar(select(Connection).where(Connection.name == "PayTrace (sandbox)"))
        ledger = session.scalar(select(Connection).where(Connection.name == "Sage 500 (sandbox)"))
        if gateway is None or ledger is None:
            return None
        if not gateway.settings.get("post_to_connection_id"):
            connections.update(
                session,
                runtime.vault,
                cli_principal(),
                gateway,
                settings={"post_to_connection_id": ledger.id, "poll_interval_seconds": 30},
            )
        paid_before = session.scalar(select(PaymentEvent.id).limit(1)) is not None
        wired = (ledger.id, gateway.id)
    activate_connections(runtime, wired)
    if paid_before:
        return None
    config = PayTraceConfig()
    base = where["paytrace"].base_url
    with httpx.Client(base_url=base, timeout=15, verify=tls_context()) as http:
        token = http.post(
            "/oauth/token",
            data={
                "grant_type": "password",
                "username": config.username,
                "password": config.password,
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        stored = http.post(
            "/v1/customer/export", json={"integrator_id": config.integrator_id}, headers=headers
        ).json()
        invoices = _open_invoices(runtime)
        payers = [
            str(c["customer_id"])
            for c in stored.get("customers", [])
            if str(c["customer_id"]) in invoices
        ]
        made = 0
        for customer, (amount, invoice) in zip(sorted(payers), DEMO_PAYMENTS, strict=False):
            open_invoice = invoices[customer]
            answer = http.post(
                "/v1/transactions/sale/by_customer",
                json={
                    "integrator_id": config.integrator_id,
                    "customer_id": customer,
                    "amount": amount or open_invoice[1],
                    "invoice_id": invoice or open_invoice[0],
                },
                headers=headers,
            )
            made += int(answer.status_code == 200)
    asyncio.run(poll_due(runtime, force=True))
    return f"Made {made} demo card payments in the PayTrace sandbox; they post to Sage 500."


def activate_connections(runtime: Runtime, ids: tuple[int, ...]) -> None:
    """Activate the demo's connections through the portal's Save (the connection is
    tested and active only when its checks pass). Card payments post through these
    connections from the first minute of the demo, so they must not show "inactive": a
    connection created by the demo starts inactive like any other, and was never saved."""
    for connection_id in ids:
        asyncio.run(connection_setup.save(runtime, cli_principal(), connection_id, activate=True))


def _open_invoices(runtime: Runtime) -> dict[str, tuple[str, str]]:
    """Each Sage 500 sandbox customer's first open invoice: CustID → (TranID, balance)."""
    engine = create_engine(runtime.settings.sandbox_sage500_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(tarCustomer.c.CustID, tarInvoice.c.TranID, tarInvoice.c.Balance)
                .join(tarCustomer, tarCustomer.c.CustKey == tarInvoice.c.CustKey)
                .where(tarInvoice.c.Balance > 0)
                .order_by(tarInvoice.c.InvcKey)
            ).all()
    finally:
        engine.dispose()
    found: dict[str, tuple[str, str]] = {}
    for cust_id, tran_id, balance in rows:
        found.setdefault(str(cust_id).strip(), (str(tran_id).strip(), f"{balance:.2f}"))
    return found


#: Deposited short of the new batch's net, in cents (a fee the schedule did not expect).
DEMO_FEE_DIFFERENCE = 240
DEMO_UNKNOWN_CREDIT = 12500
DEMO_HISTORY_REASON = "Settled before ledgerlink was connected (the sandbox's seeded history)"


def reconcile_demo(runtime: Runtime, where: dict[str, SimulatorAddress]) -> str | None:
    """Once: settle the PayTrace sandbox's open batch (the demo's card payments), write the
    bank's BAI2 statement of the deposits into the var dir with two anomalies (the new
    batch's deposit short by a fee, a credit nobody explains), import it and run, so the
    Reconciliation page has a few breaks to resolve. The sandbox's seeded history was
    never posted (it predates the connection): those breaks are explained with that reason."""
    if "paytrace" not in where:
        return None
    with runtime.db.transaction() as session:
        scopes = ensure_default_scopes(session, actor="demo")
        if not scopes or session.scalar(select(ReconStatement.id).limit(1)) is not None:
            return None
        scope_id = scopes[0].id
    asyncio.run(drain(runtime, idle_seconds=0))  # what the payments job would do next
    with httpx.Client(
        base_url=where["paytrace"].base_url, timeout=15, verify=tls_context()
    ) as http:
        history = {
            str(d["batch_number"]) for d in http.get("/_sandbox/deposits").json()["deposits"]
        }
        http.post("/_sandbox/settle", json={}).raise_for_status()
        deposits = http.get("/_sandbox/deposits").json()["deposits"]
    short = {
        str(d["batch_number"]): DEMO_FEE_DIFFERENCE
        for d in deposits
        if str(d["batch_number"]) not in history
    }
    lines, start, end = deposit_lines(
        deposits, Anomalies(fee_difference=short, unknown_credits=(DEMO_UNKNOWN_CREDIT,))
    )
    path = runtime.settings.var_dir / "demo-bank-statement.bai2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        WRITERS["bai2"](BankStatement("000123456789", "USD", start, end, 0, tuple(lines)))
    )
    me = system_principal("demo")
    with runtime.db.transaction() as session:
        scope = get_scope(session, scope_id)
        import_statement(session, me, scope, path.read_bytes(), path.name)
    asyncio.run(
        run_scope(runtime, scope_id, me, trigger="demo", matcher=default_matcher(runtime.db))
    )
    with runtime.db.transaction() as session:
        old = set(
            session.scalars(
                select(ReconTransaction.txn_id).where(
                    ReconTransaction.scope_id == scope_id,
                    ReconTransaction.batch_number.in_(sorted(history)),
                )
            )
        )
        found = session.scalars(
            select(ReconBreak).where(ReconBreak.scope_id == scope_id, ReconBreak.status == "open")
        ).all()
        for row in found:
            if row.type == "missing_receipt" and set(row.ids) <= old:
                explain(session, me, scope_id, row.break_id, DEMO_HISTORY_REASON)
        left = sum(1 for row in found if row.status == "open")
    return (
        f"Reconciled the demo's settlement batch with the bank statement {path}: "
        f"{left} breaks to resolve on the Reconciliation page."
    )
