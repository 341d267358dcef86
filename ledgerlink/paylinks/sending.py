"""E-mailing a link (a pay link, a card-capture link) to the person it is for.

Both kinds go the same way: through the configured SMTP connection
(:func:`ledgerlink.payments.notify.send`), to the address given, logged in
``notification_log`` like finance's own e-mail and audited whether or not it was sent. Only
what the message says and what the audit entry names differ, so each kind describes its
message in a :class:`LinkMail` and this module does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading, writing
from ledgerlink.identity.principal import Principal
from ledgerlink.paylinks.signed_links import PayLinkRefused
from ledgerlink.payments.notify import Mail, MailFailed, send, smtp_connection
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.payment_models import NotificationLog


@dataclass(frozen=True)
class LinkMail:
    """One link's message and how it is recorded."""

    #: ``notification_log`` kind (``pay_link``, ``card_link``)
    kind: str
    #: audit action prefix (``payment.pay_link``): ``.sent`` / ``.not_sent`` is added
    action: str
    entity_type: str
    entity_id: str
    url: str
    subject: str
    body: str
    #: who opens the link, for the message when it cannot be e-mailed ("payer")
    reader: str
    #: what the audit entry names besides the address (``invoice_number``: …)
    about: dict[str, str] = field(default_factory=dict)


def checked_address(value: str, reader: str = "payer") -> str:
    """``value`` as a normalised e-mail address, or :class:`PayLinkRefused` naming it."""
    try:
        return str(validate_email(value.strip(), check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise PayLinkRefused(
            "email", f"Enter the {reader}'s e-mail address ({value!r} is not one: {exc})"
        ) from None


async def email_link(runtime: Runtime, principal: Principal, mail: LinkMail, to: str) -> str:
    """E-mail ``mail`` to ``to`` (logged and audited); the address it went to, or
    :class:`PayLinkRefused` (field ``email``) saying why not."""
    address = checked_address(to, mail.reader)
    if not mail.url.startswith(("http://", "https://")):
        raise PayLinkRefused(
            "email",
            "Set ledgerlink's public address (LEDGERLINK_BASE_URL) so the e-mail can carry a "
            f"link the {mail.reader} can open; copy the link meanwhile",
        )
    connection = await reading(runtime.db, smtp_connection)
    if connection is None:
        raise PayLinkRefused(
            "email",
            "No e-mail (SMTP) connection is set up; add one under Accounting Integration, or "
            "copy the link and send it yourself",
        )
    error: str | None = None
    try:
        await send(runtime, connection, Mail(mail.kind, mail.subject, mail.body), to=[address])
    except MailFailed as exc:
        error = str(exc)

    def log(session: Session) -> None:
        session.add(
            NotificationLog(
                kind=mail.kind,
                subject=mail.subject[:255],
                recipients=address,
                ok=error is None,
                error=error,
            )
        )
        audit.record(
            session,
            actor=principal.actor,
            action=f"{mail.action}.sent" if error is None else f"{mail.action}.not_sent",
            entity_type=mail.entity_type,
            entity_id=mail.entity_id,
            after={"to": address, **mail.about, "error": error},
        )

    await writing(runtime.db, log)
    if error is not None:
        raise PayLinkRefused("email", f"The e-mail was not sent: {error}. Copy the link instead")
    return address


__all__ = ["LinkMail", "checked_address", "email_link"]
