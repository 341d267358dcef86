"""E-mailing a card-capture link to the customer, through the configured SMTP connection,
as pay links are sent (:mod:`ledgerlink.paylinks.mail`): logged in ``notification_log``
(kind ``card_link``) and audited, sent or not."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
from sqlalchemy.orm import Session

from ledgerlink import connections
from ledgerlink.blocking import reading, writing
from ledgerlink.identity.principal import Principal
from ledgerlink.paylinks.capture import ENTITY, CreatedCaptureLink
from ledgerlink.paylinks.links import PayLinkRefused
from ledgerlink.paylinks.mail import checked_address
from ledgerlink.payments.notify import smtp_connection
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.payment_models import NotificationLog


def message_for(link: CreatedCaptureLink) -> tuple[str, str]:
    """Subject and body (plain text: the link is the one thing to click)."""
    subject = f"{link.organisation}: save a card on file for your invoices"
    body = (
        f"Dear {link.customer_name},\n\n"
        f"{link.organisation} asks you to save a card on file to pay your invoices. Nothing "
        f"is charged now.\n\nSave your card here:\n{link.url}\n\n"
        f"The link works until {link.expires_at:%d %B %Y}. Your card is entered on "
        "PayTrace's secure card form; we never see the card number.\n"
    )
    return subject, body


async def send_capture_link(
    runtime: Runtime, principal: Principal, link: CreatedCaptureLink, to: str
) -> str:
    """E-mail ``link`` to ``to`` (audited); the address, or :class:`PayLinkRefused`
    (field ``email``) saying why not."""
    address = checked_address(to)
    if not link.url.startswith(("http://", "https://")):
        raise PayLinkRefused(
            "email",
            "Set ledgerlink's public address (LEDGERLINK_BASE_URL) so the e-mail can carry a "
            "link the customer can open; copy the link meanwhile",
        )
    connection = await reading(runtime.db, smtp_connection)
    if connection is None:
        raise PayLinkRefused(
            "email",
            "No e-mail (SMTP) connection is set up; add one under Accounting Integration, or "
            "copy the link and send it yourself",
        )
    settings = connection.settings
    subject, body = message_for(link)
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
                kind="card_link",
                subject=subject[:255],
                recipients=address,
                ok=error is None,
                error=error,
            )
        )
        audit.record(
            session,
            actor=principal.actor,
            action="payment.card_capture_link.sent"
            if error is None
            else "payment.card_capture_link.not_sent",
            entity_type=ENTITY,
            entity_id=link.nonce,
            after={"to": address, "member_number": link.member_number, "error": error},
        )

    await writing(runtime.db, log)
    if error is not None:
        raise PayLinkRefused("email", f"The e-mail was not sent: {error}. Copy the link instead")
    return address
