"""Where each step of the tour leads on this installation: the demo's SBC connection, its
bulk link run, a posted card payment, the reconciliation of PayTrace with Sage 500.

A step whose record does not exist (a fresh installation, a demo still starting) leads to
the list it would be found in, so every link opens a page that answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.connectors import registry
from ledgerlink.store.member_models import BulkLinkRun
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import PaymentEvent
from ledgerlink.store.recon_models import ReconRun, ReconScope


@dataclass(frozen=True)
class Places:
    """The links of every step (path and query, by step key), and the ids a step's page
    selectors name (``{consent_ledger}``: the SBC connection's, 0 when there is none)."""

    links: dict[str, str]
    ids: dict[str, int]


def find(session: Session) -> Places:
    """Where each step leads on this installation."""
    # The ledger a person connects with a consent flow (Connect to Sage): SBC's kind,
    # asked of the registry; a connected one first.
    consent_kinds = [d.kind for d in registry.descriptors() if d.interactive_auth]
    sbc = session.scalar(
        select(Connection.id)
        .where(Connection.kind.in_(consent_kinds))
        .order_by((Connection.auth_status == "connected").desc(), Connection.id)
        .limit(1)
    )
    runs = select(BulkLinkRun.id).order_by(BulkLinkRun.id.desc()).limit(1)
    bulk_run = session.scalar(
        runs.where(BulkLinkRun.connection_id == sbc) if sbc is not None else runs
    )
    posted = session.scalar(
        select(PaymentEvent.id)
        .where(PaymentEvent.status == "posted", PaymentEvent.kind == "sale")
        .order_by(PaymentEvent.id.desc())
        .limit(1)
    )
    # The reconciliation that has been run (the demo's: PayTrace with Sage 500), else
    # the first one.
    scope = session.scalar(
        select(ReconRun.scope_id).order_by(ReconRun.id.desc()).limit(1)
    ) or session.scalar(select(ReconScope.id).order_by(ReconScope.id).limit(1))
    without_account = "/members?without_account=1" + (
        f"&connection_id={sbc}" if sbc is not None else ""
    )
    links = {
        "connect-sbc": f"/connections/{sbc}" if sbc is not None else "/connections",
        "find-members": without_account,
        "create-and-link": f"/members/bulk/{bulk_run}" if bulk_run else without_account,
        "sync": "/sync",
        "payment-posted": f"/payments/events/{posted}" if posted else "/payments",
        "exception-resolved": "/payments/exceptions",
        "reconciliation": f"/recon/{scope}" if scope else "/recon",
    }
    return Places(links=links, ids={"consent_ledger": sbc or 0})
