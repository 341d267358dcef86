"""Telling finance by e-mail: a daily digest of reconciled payments, alerts when it matters.

Settings are an ``smtp`` connection (Accounting Integration → E-mail), its password in
the vault. Every minute a job looks at what is due:

* **alerts** — each critical exception (an upstream outage that outlasted the retries, a
  set-up gap) is e-mailed once, at once;
* **thresholds** — too many open exceptions, or a payment waiting longer than allowed to
  be posted: at most one such e-mail an hour;
* **digest** — once a day at the chosen local time: what was posted since the last one
  (count and totals per currency, each receipt), what is still open.

Every e-mail sent, or that could not be sent, is in ``notification_log``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from ledgerlink import connections
from ledgerlink.blocking import reading, writing
from ledgerlink.connectors import registry
from ledgerlink.connectors.base import CheckResult
from ledgerlink.domain.money import Money
from ledgerlink.jobs.registry import JobContext, tasks
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit_anchors
from ledgerlink.store.models import Connection
from ledgerlink.store.payment_models import (
    NotificationLog,
    PaymentEvent,
    PaymentException,
    PaymentPosting,
)
from ledgerlink.store.types import utcnow

log = structlog.get_logger("ledgerlink.payments.notify")

TASK = "payments.notify"
THRESHOLD_PAUSE = dt.timedelta(hours=1)
DIGEST_LINES = 500

#: A digest section another part of ledgerlink adds (reconciliation's breaks, in
#: recon/notify.py): its lines for the time from ``since`` to ``now``. Registered when
#: that module is imported (the job worker imports it with its tasks).
DigestSection = Callable[[Session, dt.datetime, dt.datetime], list[str]]
digest_sections: list[DigestSection] = []


def digest_section(section: DigestSection) -> DigestSection:
    """Add ``section`` to every digest, after the payments."""
    digest_sections.append(section)
    return section


@dataclass(frozen=True)
class Mail:
    kind: str  # digest | alert | threshold | test
    subject: str
    body: str


class MailFailed(Exception):
    pass


def smtp_connection(session: Session) -> Connection | None:
    found = session.scalars(
        select(Connection)
        .where(Connection.kind.in_(registry.mail_kinds()), Connection.is_active)
        .limit(1)
    ).first()
    if found is not None:
        session.expunge(found)
    return found


async def send(
    runtime: Any, connection: Connection, mail: Mail, to: list[str] | None = None
) -> None:
    """Send ``mail`` to ``to`` (by default the connection's recipients: finance);
    MailFailed says why not."""
    settings = connection.settings
    recipients = to if to is not None else list(settings.get("recipients") or [])
    if not settings.get("host") or not recipients or not settings.get("from_address"):
        raise MailFailed("Set the SMTP server, the sender and at least one recipient first")
    message = EmailMessage()
    message["From"] = settings["from_address"]
    message["To"] = ", ".join(recipients)
    message["Subject"] = mail.subject
    message.set_content(mail.body)
    security = settings.get("security", "starttls")
    try:
        await aiosmtplib.send(
            message,
            hostname=settings["host"],
            port=int(settings.get("port") or 587),
            username=settings.get("username") or None,
            password=connections.read_secret(runtime.vault, connection, "password"),
            use_tls=security == "tls",
            start_tls=security == "starttls",
            timeout=20,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise MailFailed(
            f"{settings['host']}:{settings.get('port')} refused the e-mail: {exc}"
        ) from exc


async def check_smtp(runtime: Any, connection: Connection) -> list[CheckResult]:
    """*Test connection* for e-mail: a real test message to the recipients."""
    recipients = ", ".join(connection.settings.get("recipients") or [])
    mail = Mail(
        "test",
        "ledgerlink: test message",
        "This is a test message from ledgerlink. Payment digests and alerts will come "
        "from this address.",
    )
    try:
        await send(runtime, connection, mail)
    except MailFailed as exc:
        await _record(runtime, mail, connection, str(exc))
        # Refused, timed out or cut off (OSError) says nothing about the settings.
        unreachable = isinstance(exc.__cause__, OSError)
        return [CheckResult("e-mail", False, str(exc), unreachable=unreachable)]
    await _record(runtime, mail, connection, None)
    return [CheckResult("e-mail", True, f"test message sent to {recipients}")]


async def _record(runtime: Any, mail: Mail, connection: Connection, error: str | None) -> None:
    def add(session: Session) -> None:
        session.add(
            NotificationLog(
                kind=mail.kind,
                subject=mail.subject[:255],
                recipients=", ".join(connection.settings.get("recipients") or []),
                ok=error is None,
                error=error,
            )
        )

    await writing(runtime.db, add)


# -- what is due ------------------------------------------------------------------------------


def _money_lines(rows: list[tuple[int, str]]) -> str:
    totals: dict[str, int] = {}
    for minor, currency in rows:
        totals[currency] = totals.get(currency, 0) + minor
    return ", ".join(
        Money(minor, currency).format_display() for currency, minor in sorted(totals.items())
    )


def alert_due(session: Session) -> tuple[Mail, list[int]] | None:
    """Critical exceptions not e-mailed yet, as one alert (and their ids)."""
    rows = session.execute(
        select(PaymentException, PaymentEvent.transaction_id, PaymentEvent.kind)
        .join(PaymentEvent, PaymentEvent.id == PaymentException.event_id)
        .where(
            PaymentException.status == "open",
            PaymentException.critical,
            PaymentException.alerted_at.is_(None),
        )
        .order_by(PaymentException.id)
    ).all()
    if not rows:
        return None
    lines = [
        f"- PayTrace {kind} {transaction}: {found.reason}\n  What to do: {found.fix}"
        for found, transaction, kind in rows
    ]
    subject = f"ledgerlink: {len(rows)} payment(s) could not be posted"
    body = (
        "These payments need attention now (Payments → Exceptions in the portal):\n\n"
        + "\n".join(lines)
    )
    return Mail("alert", subject, body), [found.id for found, _, _ in rows]


def threshold_due(session: Session, settings: dict[str, Any], now: dt.datetime) -> Mail | None:
    last = session.scalar(
        select(func.max(NotificationLog.sent_at)).where(
            NotificationLog.kind == "threshold", NotificationLog.ok
        )
    )
    if last is not None and now - last < THRESHOLD_PAUSE:
        return None
    problems = []
    limit = int(settings.get("exceptions_threshold") or 0)
    if limit:
        open_count = session.scalar(
            select(func.count())
            .select_from(PaymentException)
            .where(PaymentException.status == "open")
        )
        if (open_count or 0) >= limit:
            problems.append(f"{open_count} payment exceptions are open (alert at {limit}).")
    minutes = int(settings.get("pending_minutes_threshold") or 0)
    if minutes:
        oldest = session.scalar(
            select(func.min(PaymentEvent.received_at)).where(
                PaymentEvent.status.in_(("received", "processing"))
            )
        )
        if oldest is not None and now - oldest > dt.timedelta(minutes=minutes):
            waited = int((now - oldest).total_seconds() // 60)
            problems.append(
                f"A payment has waited {waited} minutes to be posted (alert after {minutes}); "
                "check upstream health on the Payments page."
            )
    if not problems:
        return None
    return Mail("threshold", "ledgerlink: payments need attention", "\n".join(problems))


def digest_due(session: Session, settings: dict[str, Any], now: dt.datetime) -> Mail | None:
    at = str(settings.get("digest_at") or "")
    if not at:
        return None
    zone = ZoneInfo(str(settings.get("timezone") or "UTC"))
    local = now.astimezone(zone)
    hour, minute = (int(part) for part in at.split(":"))
    due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if local < due:
        return None
    last = session.scalar(
        select(func.max(NotificationLog.sent_at)).where(
            NotificationLog.kind == "digest", NotificationLog.ok
        )
    )
    if last is not None and last.astimezone(zone) >= due:
        return None
    since = last or (now - dt.timedelta(days=1))
    posted = session.execute(
        select(
            PaymentPosting.action,
            PaymentPosting.transaction_id,
            PaymentPosting.invoice_number,
            PaymentPosting.amount_minor,
            PaymentPosting.currency,
            PaymentPosting.system,
            PaymentPosting.ledger_id,
        )
        .where(PaymentPosting.posted_at > since)
        .order_by(PaymentPosting.id)
    ).all()
    receipts = [p for p in posted if p.action == "receipt"]
    others = [p for p in posted if p.action != "receipt"]
    open_exceptions = session.scalar(
        select(func.count()).select_from(PaymentException).where(PaymentException.status == "open")
    )
    lines = [
        f"Since {since.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key}):",
        f"- {len(receipts)} card payments posted as receipts: "
        f"{_money_lines([(p.amount_minor, p.currency) for p in receipts]) or 'none'}",
        f"- {len(others)} refunds, voids and chargebacks posted",
        f"- {open_exceptions or 0} exceptions open (Payments → Exceptions)",
        "",
        "Posted:",
    ]
    for p in posted[:DIGEST_LINES]:
        amount = Money(p.amount_minor, p.currency).format_display()
        invoice = f" invoice {p.invoice_number}" if p.invoice_number else ""
        lines.append(
            f"  {p.action:9} PayTrace {p.transaction_id}{invoice} {amount} → {p.ledger_id}"
        )
    if len(posted) > DIGEST_LINES:
        lines.append(f"  … and {len(posted) - DIGEST_LINES} more (see Payments in the portal)")
    for section in digest_sections:
        lines += ["", *section(session, since, now)]
    subject = f"ledgerlink: {len(receipts)} payments reconciled ({local:%Y-%m-%d})"
    return Mail("digest", subject, "\n".join(lines))


async def run_notifications(runtime: Any, now: dt.datetime | None = None) -> list[Mail]:
    """Send whatever is due; returns what was sent."""
    at = now or utcnow()
    found = await reading(runtime.db, lambda session: _due(session, at))
    if found is None:
        return []
    connection, alert, threshold, digest = found
    if digest is not None:
        anchor = audit_anchors.digest_lines(runtime.settings)
        digest = Mail(digest.kind, digest.subject, "\n".join([digest.body, *anchor]))
    due: list[tuple[Mail, list[int]]] = [alert] if alert else []
    due += [(mail, []) for mail in (threshold, digest) if mail is not None]
    sent = []
    for mail, ids in due:
        try:
            await send(runtime, connection, mail)
        except MailFailed as exc:
            log.warning("notify.failed", kind=mail.kind, error=str(exc))
            await _record(runtime, mail, connection, str(exc))
            continue
        await _record(runtime, mail, connection, None)
        if ids:
            alerted = (
                update(PaymentException).where(PaymentException.id.in_(ids)).values(alerted_at=at)
            )
            await writing(runtime.db, _executing(alerted))
        sent.append(mail)
    return sent


def _executing(statement: Executable) -> Callable[[Session], None]:
    def run(session: Session) -> None:
        session.execute(statement)

    return run


def _due(
    session: Session, now: dt.datetime
) -> tuple[Connection, tuple[Mail, list[int]] | None, Mail | None, Mail | None] | None:
    """The e-mail connection and the alert, threshold warning and digest due now."""
    connection = smtp_connection(session)
    if connection is None:
        return None
    settings = connection.settings
    alert = alert_due(session) if settings.get("alerts", True) else None
    return (
        connection,
        alert,
        threshold_due(session, settings, now),
        digest_due(session, settings, now),
    )


@tasks.task(TASK)
def notify_task(ctx: JobContext, **_: Any) -> None:
    runtime = Runtime.for_job(ctx)
    asyncio.run(run_notifications(runtime))


tasks.periodic("payments.notify.minutely", "* * * * *", task=TASK)
