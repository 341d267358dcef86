"""Reconciliation scopes: which PayTrace connection is reconciled against which ledger.

A scope is created for each PayTrace connection and the ledger its card payments are
posted to (its *Post payments to* setting, or the one active ledger), so reconciliation
works without a set-up step; a pair can also be named by hand (CLI and API).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledgerlink.connectors import registry
from ledgerlink.recon.fees import brand_key, checked_schedule, refresh_expected, schedule_of
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.store import audit
from ledgerlink.store.models import Connection
from ledgerlink.store.recon_models import ReconScope

#: When unexplained breaks of a scope are e-mailed (recon/notify.py): at this many open
#: breaks, or (when set) at this amount at stake; None turns a limit off.
DEFAULT_ALERT: dict[str, int | None] = {"unexplained_breaks": 10, "unexplained_minor": None}
_ALERT_LIMITS = {"unexplained_breaks": 1_000_000, "unexplained_minor": 10**15}


def alert_settings(scope: ReconScope) -> dict[str, int | None]:
    """The scope's alert threshold, defaults filled in."""
    return {**DEFAULT_ALERT, **((scope.settings or {}).get("alert") or {})}


def checked_alert(data: Mapping[str, Any]) -> dict[str, int | None]:
    """An alert threshold from the CLI or an API body, refused with the field named."""
    checked: dict[str, int | None] = {}
    for name, value in data.items():
        if name not in _ALERT_LIMITS:
            raise ReconRefused(
                f"alert.{name}", "unknown setting; give unexplained_breaks or unexplained_minor"
            )
        if value is None:
            checked[name] = None
            continue
        top = _ALERT_LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            unit = "breaks" if name == "unexplained_breaks" else "minor units: 50000 is $500.00"
            raise ReconRefused(
                f"alert.{name}",
                f"{value!r} is not a whole number from 1 to {top} ({unit}); null turns it off",
            )
        checked[name] = value
    return checked


def posting_ledger_id(session: Session, paytrace: Connection) -> int | None:
    """The ledger this PayTrace connection's payments are posted to (as the payments
    path chooses it), or None when that is not decided."""
    wanted = paytrace.settings.get("post_to_connection_id")
    if wanted:
        return int(wanted)
    ledgers = list(
        session.scalars(
            select(Connection.id).where(
                Connection.kind.in_(registry.ledger_kinds()), Connection.is_active
            )
        )
    )
    return ledgers[0] if len(ledgers) == 1 else None


def ensure_scope(session: Session, gateway_id: int, ledger_id: int, *, actor: str) -> ReconScope:
    """The scope of this pair, created on first use (refused unless the pair is a PayTrace
    connection and a ledger)."""
    gateway = session.get(Connection, gateway_id)
    if gateway is None or gateway.kind not in registry.gateway_kinds():
        raise ReconRefused(
            "gateway", f"Connection {gateway_id} is not a PayTrace connection; give a PayTrace one"
        )
    ledger = session.get(Connection, ledger_id)
    if ledger is None or ledger.kind not in registry.ledger_kinds():
        raise ReconRefused(
            "ledger", f"Connection {ledger_id} is not a ledger; give an SBC or Sage 500 connection"
        )
    found = _scope_of(session, gateway_id, ledger_id)
    if found is not None:
        return found
    scope = ReconScope(
        name=f"{gateway.name} ↔ {ledger.name}",
        gateway_connection_id=gateway_id,
        ledger_connection_id=ledger_id,
        currency=str(gateway.settings.get("currency") or "USD"),
        created_by=actor,
    )
    try:
        with session.begin_nested():
            session.add(scope)
            session.flush()
    except IntegrityError:
        # Another transaction created the pair's scope meanwhile (the daily run's job and
        # a run from the portal, both on the first day): theirs is the scope.
        found = _scope_of(session, gateway_id, ledger_id)
        if found is None:
            raise
        return found
    return scope


def _scope_of(session: Session, gateway_id: int, ledger_id: int) -> ReconScope | None:
    return session.scalar(
        select(ReconScope).where(
            ReconScope.gateway_connection_id == gateway_id,
            ReconScope.ledger_connection_id == ledger_id,
        )
    )


def ensure_default_scopes(session: Session, *, actor: str) -> list[ReconScope]:
    """A scope for every PayTrace connection whose posting ledger is known, then every
    scope there is (oldest first)."""
    gateways = select(Connection).where(Connection.kind.in_(registry.gateway_kinds()))
    for paytrace in session.scalars(gateways):
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


def update_settings(
    session: Session,
    scope_id: int,
    *,
    actor: str,
    fee_schedule: Mapping[str, Any] | None = None,
    alert: Mapping[str, Any] | None = None,
) -> ReconScope:
    """Change a scope's expected fee schedule (brands given replace those brands; a brand
    given as None goes back to the default) and its alert threshold; audited. The
    scope's batches get their expected fees again at once, so the next run uses them."""
    scope = get_scope(session, scope_id)
    before = dict(scope.settings or {})
    after = dict(before)
    if fee_schedule is not None:
        kept = {k: v for k, v in (before.get("fee_schedule") or {}).items()}
        given = {k: v for k, v in fee_schedule.items() if v is not None}
        kept.update(checked_schedule(given).as_settings())
        for name, value in fee_schedule.items():
            if value is None:
                kept.pop(brand_key(str(name)), None)
        after["fee_schedule"] = kept
    if alert is not None:
        after["alert"] = {**(before.get("alert") or {}), **checked_alert(alert)}
    if after == before:
        return scope
    scope.settings = after
    audit.record(
        session,
        actor=actor,
        action="recon.scope.settings",
        entity_type="recon_scope",
        entity_id=scope.id,
        before=before,
        after=after,
    )
    if fee_schedule is not None:
        session.flush()
        refresh_expected(session, scope, None)
    return scope


def settings_of(scope: ReconScope) -> dict[str, Any]:
    """A scope's settings as shown (defaults filled in): the expected fee per card brand
    and the alert threshold."""
    return {
        "scope_id": scope.id,
        "currency": scope.currency,
        "fee_schedule": schedule_of(scope).as_settings(),
        "alert": alert_settings(scope),
    }
