"""Two integration pairs in one installation, for the tests of fairness between pairs:
PayTrace merchant A → SBC (whose simulator can be slowed by a fault) and PayTrace
merchant B → Sage 500, each PayTrace account its own simulator on a real socket."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerlink import connections, demo
from ledgerlink.runtime import Runtime
from ledgerlink.sandbox.faults import FaultInjector
from ledgerlink.sandbox.paytrace import PayTraceConfig
from ledgerlink.sandbox.paytrace import create_app as paytrace_app
from ledgerlink.sandbox.sbc import SbcConfig
from ledgerlink.settings import Settings
from tests.support.asgi_server import serve_in_thread
from tests.support.ledger_links import link_members
from tests.support.payments import ME, PaymentsWorld, add_sage500_connection, running_erp
from tests.support.sbc import connect_ledgerlink, running_sbc


def renumber_transactions(state_dir: Path, offset: int) -> None:
    """Move a PayTrace simulator's transaction ids up by ``offset``.

    Every simulator numbers from 180000001, while real PayTrace ids are unique across
    merchant accounts (and ledgerlink's inbox relies on it); two simulators in one
    installation would otherwise hand out the same ids."""
    with sqlite3.connect(state_dir / "paytrace.sqlite3") as db:
        db.execute("UPDATE transactions SET id = id + ?", (offset,))


@dataclass
class TwoPairs:
    #: PayTrace merchant A → SBC
    sbc: PaymentsWorld
    #: PayTrace merchant B → Sage 500
    sage500: PaymentsWorld
    #: the SBC simulator's faults (set a latency to slow pair A's ledger down)
    sbc_faults: FaultInjector
    #: PayTrace A's faults (set a latency to slow pair A's merchant account down)
    paytrace_faults: FaultInjector
    #: where the simulators keep their state (PayTrace A in pt0/, B in pt1/)
    root: Path


def add_gateway(
    runtime: Runtime, session: Any, name: str, config: PayTraceConfig, base: str, ledger_id: int
) -> int:
    """A PayTrace connection (merchant account) named ``name`` posting to ``ledger_id``."""
    gateway = connections.create(
        session,
        runtime.vault,
        ME,
        kind="paytrace",
        name=name,
        settings={
            "username": config.username,
            "integrator_id": config.integrator_id,
            "api_base_url": base,
            "post_to_connection_id": ledger_id,
        },
        secrets={"password": config.password},
    )
    session.flush()
    return int(gateway.id)


@contextmanager
def two_pairs(settings: Settings, tmp_path: Path, *, people: int = 12) -> Iterator[TwoPairs]:
    from ledgerlink.store.migrate import upgrade

    runtime = Runtime(settings)
    upgrade(runtime.db)
    faults = FaultInjector()
    paytrace_faults = FaultInjector()
    configs = [PayTraceConfig(seed_people=people, duplicate_window_seconds=0) for _ in range(2)]
    erp_url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    with ExitStack() as stack:
        bases = [
            stack.enter_context(
                serve_in_thread(
                    paytrace_app(
                        tmp_path / f"pt{n}",
                        config=configs[n],
                        faults=paytrace_faults if n == 0 else None,
                    )
                )
            )
            for n in range(2)
        ]
        sbc_url, _ = stack.enter_context(
            running_sbc(
                tmp_path / "sbc", SbcConfig(rate_limit_per_minute=0, seed_people=people), faults
            )
        )
        erp = stack.enter_context(running_erp(erp_url, people))
        with runtime.db.transaction() as session:
            demo.ensure_members(session, count=people)
        sbc_id = connect_ledgerlink(runtime, sbc_url)
        with runtime.db.transaction() as session:
            sage_id = int(add_sage500_connection(runtime, session, erp_url).id)
            gateway_a = add_gateway(runtime, session, "PayTrace A", configs[0], bases[0], sbc_id)
            gateway_b = add_gateway(runtime, session, "PayTrace B", configs[1], bases[1], sage_id)
        slow = PaymentsWorld(runtime, bases[0], configs[0], gateway_a, sbc_id)
        fast = PaymentsWorld(runtime, bases[1], configs[1], gateway_b, sage_id, erp)

        async def link_all() -> None:
            async with slow.ledger() as ledger:
                numbers = [f"M{n:05d}" for n in range(1, people + 1)]
                await link_members(runtime.db, ledger, sbc_id, numbers)

        asyncio.run(link_all())
        try:
            yield TwoPairs(slow, fast, faults, paytrace_faults, root=tmp_path)
        finally:
            runtime.db.dispose()
