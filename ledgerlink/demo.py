"""`make demo`: the product on the embedded back-end with the three simulators and demo data.

Everything here is idempotent, so a second `make demo` reuses what the first one made
(users, connections, simulator state under var/).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink import connections
from ledgerlink.identity import users
from ledgerlink.identity.principal import cli_principal
from ledgerlink.identity.roles import Role
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.supervisor import SimulatorAddress
from ledgerlink.store.models import Connection, User

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
        from ledgerlink.sandbox.sbc import SbcConfig

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
        from ledgerlink.sandbox.paytrace import PayTraceConfig

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
                {"mode": "sql", "company_id": "LLK", "currency": "USD"},
                {"database_url": runtime.settings.sandbox_sage500_url},
            )
        )
    return wanted


def ensure_users(session: Session) -> None:
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
