"""Sending a pay link to the payer by e-mail, through the configured SMTP connection.

The message names the invoice, the amount due, the due date and the link; it goes to the
address given (by default the ledger customer's e-mail), from the connection's sender.
Every message sent, or that could not be sent, is in ``notification_log`` (kind
``pay_link``) like finance's own e-mail.
"""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from ledgerlink import connections
from ledgerlink.blocking import reading, writing
from ledgerlink.identity.principal import Principal
from ledgerlink.paylinks.links import CreatedLink, PayLinkRefused
from ledgerlink.payments.notify import smtp_connection
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.payment_models import NotificationLog


def checked_address(value: str) -> str:
    try:
        return str(validate_email(value.strip(), check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise PayLinkRefused(
            "email", f"Enter the payer's e-mail address ({value!r} is not one: {exc})"
        ) from None


def message_for(link: CreatedLink, organisation: str) -> tuple[str, str]:
    """Subject and body of the e-mail (plain text: the link is the one thing to click)."""
    due = link.due_date.strftime("%d %B %Y") if link.due_date else "on receipt"
    subject = f"Invoice {link.invoice_number}: {link.amount_due.format_display()} due"
    body = (
        f"Dear {link.customer_name},\n\n"
        f"{organisation} invoice {link.invoice_number} has "
        f"{link.amount_due.format_display()} ({link.amount_due.currency}) to pay, due "
        f"{due}.\n\nPay it by card here:\n{link.url}\n\n"
        f"The link works until {link.expires_at:%d %B %Y}. Your card is entered on "
        "PayTrace's secure card form; we never see the card number.\n"
    )
    return subject, body


async def send_link(runtime: Runtime, principal: Principal, link: CreatedLink, to: str) -> str:
    """E-mail ``link`` to ``to`` (audited); the address it went to, or
    :class:`PayLinkRefused` (field ``email``) saying why not."""
    address = checked_address(to)
    if not link.url.startswith(("http://", "https://")):
        raise PayLinkRefused(
            "email",
            "Set ledgerlink's public address (LEDGERLINK_BASE_URL) so the e-mail can carry a "
            "link the payer can open; copy the link meanwhile",
        )
    connection = await reading(runtime.db, smtp_connection)
    if connection is None:
        raise PayLinkRefused(
            "email",
            "No e-mail (SMTP) connection is set up; add one under Accounting Integration, or "
            "copy the link and send it yourself",
        )
    settings = connection.settings
    subject, body = message_for(link, link.organisation)
    message = EmailMessage()
    message["From"] = settings.get("from_address") or ""
    message["To"] = address
    message["Subject"] = subject
    message.set_content(body)
    security = settings.get("security", "starttls")
    error: str | None = None
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.get("host") or "",
            port=int(settings.get("port") or 587),
            username=settings.get("username") or None,
            password=connections.read_secret(runtime.vault, connection, "password"),
            use_tls=security == "tls",
            start_tls=security == "starttls",
            timeout=20,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        error = f"{settings.get('host')}:{settings.get('port')} refused the e-mail: {exc}"

    def log(session: Session) -> None:
        session.add(
            NotificationLog(
                kind="pay_link",
                subject=subject[:255],
                recipients=address,
                ok=error is None,
                error=error,
            )
        )
        audit.record(
            session,
            actor=principal.actor,
            action="payment.pay_link.sent" if error is None else "payment.pay_link.not_sent",
            entity_type="pay_link",
            entity_id=link.nonce,
            after={"to": address, "invoice_number": link.invoice_number, "error": error},
        )

    await writing(runtime.db, log)
    if error is not None:
        raise PayLinkRefused("email", f"The e-mail was not sent: {error}. Copy the link instead")
    return address
