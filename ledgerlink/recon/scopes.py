"""Reconciliation scopes: which PayTrace connection is reconciled against which ledger.

A scope is created for each PayTrace connection and the ledger its card payments are
posted to (its *Post payments to* setting, or the one active ledger), so reconciliation
works without a set-up step; a pair can also be named by hand (CLI and API).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.recon.problems import ReconRefused
from ledgerlink.store.models import Connection
from ledgerlink.store.recon_models import ReconScope

LEDGER_KINDS = ("sbc", "sage500")


def posting_ledger_id(session: Session, paytrace: Connection) -> int | None:
    """The ledger this PayTrace connection's payments are posted to (as the payments
    path chooses it), or None when that is not decided."""
    wanted = paytrace.settings.get("post_to_connection_id")
    if wanted:
        return int(wanted)
    ledgers = list(
        session.scalars(
            select(Connection.id).where(Connection.kind.in_(LEDGER_KINDS), Connection.is_active)
        )
    )
    return ledgers[0] if len(ledgers) == 1 else None


def ensure_scope(session: Session, gateway_id: int, ledger_id: int, *, actor: str) -> ReconScope:
    """The scope of this pair, created on first use (refused unless the pair is a PayTrace
    connection and a ledger)."""
    gateway = session.get(Connection, gateway_id)
    if gateway is None or gateway.kind != "paytrace":
        raise ReconRefused(
            "gateway", f"Connection {gateway_id} is not a PayTrace connection; give a PayTrace one"
        )
    ledger = session.get(Connection, ledger_id)
    if ledger is None or ledger.kind not in LEDGER_KINDS:
        raise ReconRefused(
            "ledger", f"Connection {ledger_id} is not a ledger; give an SBC or Sage 500 connection"
        )
    found = session.scalar(
        select(ReconScope).where(
            ReconScope.gateway_connection_id == gateway_id,
            ReconScope.ledger_connection_id == ledger_id,
        )
    )
    if found is not None:
        return found
    scope = ReconScope(
        name=f"{gateway.name} ↔ {ledger.name}",
        gateway_connection_id=gateway_id,
        ledger_connection_id=ledger_id,
        currency=str(gateway.settings.get("currency") or "USD"),
        created_by=actor,
    )
    session.add(scope)
    session.flush()
    return scope


def ensure_default_scopes(session: Session, *, actor: str) -> list[ReconScope]:
    """A scope for every PayTrace connection whose posting ledger is known, then every
    scope there is (oldest first)."""
    for paytrace in session.scalars(select(Connection).where(Connection.kind == "paytrace")):
        ledger_id = posting_ledger_id(session, paytrace)
        if ledger_id is not None and session.get(Connection, ledger_id) is not None:
            ensure_scope(session, paytrace.id, ledger_id, actor=actor)
    return list(session.scalars(select(ReconScope).order_by(ReconScope.id)))


def get_scope(session: Session, scope_id: int) -> ReconScope:
    scope = session.get(ReconScope, scope_id)
    if scope is None:
        raise ReconRefused("scope", f"There is no reconciliation scope {scope_id}", missing=True)
    return scope


def resolve_scope(session: Session, scope_id: int | None, *, actor: str) -> ReconScope:
    """The scope asked for, or the only one there is (created from the connections)."""
    if scope_id is not None:
        return get_scope(session, scope_id)
    scopes = ensure_default_scopes(session, actor=actor)
    if len(scopes) == 1:
        return scopes[0]
    if not scopes:
        raise ReconRefused(
            "scope",
            "There is nothing to reconcile yet: add a PayTrace connection and the ledger its "
            "payments are posted to under Accounting Integration",
        )
    names = ", ".join(f"{s.id} ({s.name})" for s in scopes)
    raise ReconRefused("scope", f"There are several scopes; choose one of {names}")
