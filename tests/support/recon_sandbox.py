"""Reconciliation against the sandboxes: the PayTrace simulator, a ledger simulator (Sage
500 or SBC) and a bank statement written from the simulator's deposits, all read through
ledgerlink's own connectors and statement import."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select

from ledgerlink.connectors.http import tls_context
from ledgerlink.identity.principal import cli_principal
from ledgerlink.recon.imports import ImportResult, import_statement
from ledgerlink.recon.runs import RunOutcome, default_matcher, run_scope
from ledgerlink.recon.scopes import ensure_scope, get_scope
from ledgerlink.recon.views import BreakFilter, BreakRow, break_rows
from ledgerlink.sandbox.statements import WRITERS, Anomalies, BankStatement, deposit_lines
from tests.support.payments import PaymentsWorld

ME = cli_principal()


def scope_of(world: PaymentsWorld) -> int:
    with world.runtime.db.transaction() as session:
        return ensure_scope(session, world.paytrace_id, world.ledger_id, actor="test").id


def run(world: PaymentsWorld, scope_id: int, **kwargs: Any) -> RunOutcome:
    return asyncio.run(
        run_scope(world.runtime, scope_id, ME, trigger="cli", matcher=default_matcher(), **kwargs)
    )


def breaks(world: PaymentsWorld, scope_id: int, status: str = "open") -> list[BreakRow]:
    with world.runtime.db.read() as session:
        return break_rows(session, scope_id, BreakFilter(status=status, limit=10_000))


def statement_of_deposits(
    world: PaymentsWorld, fmt: str, anomalies: Anomalies | None = None
) -> bytes:
    """The bank's statement (in ``fmt``) of every deposit the PayTrace simulator made."""
    deposits = httpx.get(
        f"{world.paytrace_url}/_sandbox/deposits", timeout=10, verify=tls_context()
    ).json()["deposits"]
    lines, start, end = deposit_lines(deposits, anomalies or Anomalies())
    return WRITERS[fmt](BankStatement("000123456789", "USD", start, end, 0, tuple(lines)))


def import_file(world: PaymentsWorld, scope_id: int, data: bytes, name: str) -> ImportResult:
    with world.runtime.db.transaction() as session:
        return import_statement(session, ME, get_scope(session, scope_id), data, name)


def receipts_for(world: PaymentsWorld, scope_id: int, txn_id: str) -> list[str]:
    from ledgerlink.store.recon_models import ReconReceipt

    with world.runtime.db.read() as session:
        return list(
            session.scalars(
                select(ReconReceipt.receipt_id).where(
                    ReconReceipt.scope_id == scope_id,
                    ReconReceipt.txn_id == txn_id,
                    ReconReceipt.reversed.is_(False),
                )
            )
        )
