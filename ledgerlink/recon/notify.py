"""Reconciliation in finance's e-mail: its breaks in the daily digest, and alerts.

* **digest** — a section of the payments digest (``payments/notify.py``): per scope, the
  open breaks by type with their amounts, how many are new since the last digest, and
  the oldest deposit in transit.
* **batch alert** — a settlement batch that does not match (its deposit differs from the
  expected net, or its total from the ledger's receipts) is e-mailed once, when a run
  first finds it.
* **threshold alert** — when a scope's unexplained breaks reach its threshold (a count,
  or an amount at stake; the scope's ``settings["alert"]``, see ``recon/scopes.py``),
  the breaks not yet in an alert are e-mailed, once each. A deposit in transit counts
  only after the days a deposit may take (the rules spec's tolerance).

Each break remembers when it was alerted (``recon_breaks.alerted_at``), so no problem is
e-mailed twice; every e-mail sent or failed is in ``notification_log``. The alerts go to
the e-mail connection's recipients, unless its *alerts* setting is off.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading, writing
from ledgerlink.domain.money import Money
from ledgerlink.jobs.registry import JobContext, tasks
from ledgerlink.payments.notify import Mail, MailFailed, digest_section, send, smtp_connection
from ledgerlink.recon.breaks import BreakType
from ledgerlink.recon.scopes import alert_settings
from ledgerlink.runtime import Runtime
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import NotificationLog
from ledgerlink.store.recon_models import ReconBreak, ReconRun, ReconScope
from ledgerlink.store.types import utcnow

log = structlog.get_logger("ledgerlink.recon.notify")

TASK = "recon.notify"
#: Breaks that say a settlement batch did not reconcile: alerted on their own.
BATCH_TYPES = (BreakType.deposit_mismatch.value, BreakType.batch_ledger_mismatch.value)
#: Days a deposit may take before "in transit" is a problem worth counting.
IN_TRANSIT_GRACE_DAYS = 3
ALERT_LINES = 200


@dataclass(frozen=True)
class Alert:
    mail: Mail
    break_pks: list[int]


def _money(minor: int, currency: str) -> str:
    return Money(minor, currency).format_display()


def _label(kind: str) -> str:
    try:
        return BreakType(kind).label
    except ValueError:
        return kind.replace("_", " ")


def _open(session: Session, scope_id: int) -> list[ReconBreak]:
    return list(
        session.scalars(
            select(ReconBreak)
            .where(ReconBreak.scope_id == scope_id, ReconBreak.status == "open")
            .order_by(ReconBreak.type, ReconBreak.occurred_on, ReconBreak.break_id)
        )
    )


def _unexplained(breaks: Sequence[ReconBreak]) -> list[ReconBreak]:
    return [
        b
        for b in breaks
        if b.type != BreakType.deposit_in_transit.value or b.as_of_days > IN_TRANSIT_GRACE_DAYS
    ]


# -- the digest ---------------------------------------------------------------------------------


@digest_section
def digest_lines(session: Session, since: dt.datetime, now: dt.datetime) -> list[str]:
    """The digest's reconciliation section: one paragraph per scope."""
    scopes = list(session.scalars(select(ReconScope).order_by(ReconScope.id)))
    if not scopes:
        return []
    lines = ["Reconciliation (Reconciliation page in the portal):"]
    for scope in scopes:
        last = session.scalar(
            select(func.max(ReconRun.finished_at)).where(
                ReconRun.scope_id == scope.id, ReconRun.status == "finished"
            )
        )
        if last is None:
            lines.append(f"- {scope.name}: not run yet")
            continue
        breaks = _open(session, scope.id)
        if not breaks:
            lines.append(
                f"- {scope.name}: everything reconciled (last run {last:%Y-%m-%d %H:%M} UTC)"
            )
            continue
        at_stake = sum(b.amount_minor for b in breaks)
        new = sum(1 for b in breaks if b.opened_at > since)
        lines.append(
            f"- {scope.name}: {len(breaks)} open breaks, {_money(at_stake, scope.currency)} at "
            f"stake; {new} new since the last digest"
        )
        by_type: dict[str, list[ReconBreak]] = {}
        for found in breaks:
            by_type.setdefault(found.type, []).append(found)
        for kind, of_kind in by_type.items():
            amount = _money(sum(b.amount_minor for b in of_kind), scope.currency)
            oldest = ""
            if kind == BreakType.deposit_in_transit.value:
                oldest = f" (oldest {max(b.as_of_days for b in of_kind)} days)"
            lines.append(f"    {_label(kind)}: {len(of_kind)}, {amount}{oldest}")
    return lines


# -- alerts -------------------------------------------------------------------------------------


def _lines(breaks: Sequence[ReconBreak]) -> list[str]:
    shown = [f"- {_label(b.type)}: {b.detail}" for b in breaks[:ALERT_LINES]]
    if len(breaks) > ALERT_LINES:
        shown.append(f"… and {len(breaks) - ALERT_LINES} more (see the Reconciliation page)")
    return shown


def alerts_due(session: Session) -> list[Alert]:
    """Per scope: the batch alert and the threshold alert due now (each break once)."""
    due: list[Alert] = []
    for scope in session.scalars(select(ReconScope).order_by(ReconScope.id)):
        breaks = [b for b in _open(session, scope.id) if b.present]
        batches = [b for b in breaks if b.type in BATCH_TYPES and b.alerted_at is None]
        if batches:
            subject = f"ledgerlink: {len(batches)} settlement batch(es) did not reconcile"
            body = "\n".join(
                [
                    f"{scope.name}: these settlement batches do not agree with the bank or "
                    "the ledger (Reconciliation in the portal):",
                    "",
                    *_lines(batches),
                ]
            )
            due.append(Alert(Mail("recon_batch", subject, body), [b.id for b in batches]))
        limits = alert_settings(scope)
        unexplained = _unexplained(breaks)
        count, at_stake = len(unexplained), sum(b.amount_minor for b in unexplained)
        over = []
        if limits["unexplained_breaks"] and count >= limits["unexplained_breaks"]:
            over.append(f"{count} breaks are unexplained (alert at {limits['unexplained_breaks']})")
        if limits["unexplained_minor"] and at_stake >= limits["unexplained_minor"]:
            over.append(
                f"{_money(at_stake, scope.currency)} is at stake in unexplained breaks (alert "
                f"at {_money(limits['unexplained_minor'], scope.currency)})"
            )
        batch_pks = {b.id for b in batches}
        fresh = [b for b in unexplained if b.alerted_at is None and b.id not in batch_pks]
        if over and fresh:
            subject = f"ledgerlink: {count} unexplained reconciliation breaks in {scope.name}"
            body = "\n".join(
                [
                    f"{scope.name}: {'; '.join(over)}.",
                    "",
                    f"New since the last alert ({len(fresh)}):",
                    *_lines(fresh),
                    "",
                    "Resolve or explain them on the Reconciliation page.",
                ]
            )
            due.append(Alert(Mail("recon_threshold", subject[:255], body), [b.id for b in fresh]))
    return due


def _log(session: Session, mail: Mail, recipients: list[str], error: str | None) -> None:
    session.add(
        NotificationLog(
            kind=mail.kind,
            subject=mail.subject[:255],
            recipients=", ".join(recipients),
            ok=error is None,
            error=error,
        )
    )


async def run_alerts(runtime: Any, now: dt.datetime | None = None) -> list[Mail]:
    """E-mail the reconciliation alerts due; returns what was sent. A mail that could not
    be sent is logged and tried again on the next tick (its breaks stay un-alerted).
    Database work runs in the database threads, the sending on the event loop."""
    at = now or utcnow()
    found = await reading(runtime.db, _connection_and_alerts)
    if found is None:
        return []
    connection, due = found
    recipients = list(connection.settings.get("recipients") or [])
    sent = []
    for alert in due:
        try:
            await send(runtime, connection, alert.mail)
        except MailFailed as exc:
            log.warning("recon.alert_failed", kind=alert.mail.kind, error=str(exc))
            failed = partial(_log, mail=alert.mail, recipients=recipients, error=str(exc))
            await writing(runtime.db, failed)
            continue
        await writing(runtime.db, partial(_sent, alert=alert, recipients=recipients, at=at))
        sent.append(alert.mail)
    return sent


def _connection_and_alerts(session: Session) -> tuple[Connection, list[Alert]] | None:
    """The mail connection and the alerts due, or None when alerts are off."""
    connection = smtp_connection(session)
    if connection is None or not connection.settings.get("alerts", True):
        return None
    return connection, alerts_due(session)


def _sent(session: Session, alert: Alert, recipients: list[str], at: dt.datetime) -> None:
    """Log ``alert``'s mail as sent and mark its breaks alerted."""
    _log(session, alert.mail, recipients, None)
    session.execute(
        update(ReconBreak).where(ReconBreak.id.in_(alert.break_pks)).values(alerted_at=at)
    )


@tasks.task(TASK)
def notify_task(ctx: JobContext, **_: Any) -> None:
    asyncio.run(run_alerts(Runtime.for_job(ctx)))


tasks.periodic("recon.notify.minutely", "* * * * *", task=TASK)
