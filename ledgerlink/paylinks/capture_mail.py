"""E-mailing a card-capture link to the customer, through the configured SMTP connection,
as pay links are sent (:mod:`ledgerlink.paylinks.sending`): logged in ``notification_log``
(kind ``card_link``) and audited, sent or not."""

from __future__ import annotations

from ledgerlink.identity.principal import Principal
from ledgerlink.paylinks.capture import ENTITY, CreatedCaptureLink
from ledgerlink.paylinks.sending import LinkMail, email_link
from ledgerlink.runtime import Runtime


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
    subject, body = message_for(link)
    mail = LinkMail(
        kind="card_link",
        action="payment.card_capture_link",
        entity_type=ENTITY,
        entity_id=link.nonce,
        url=link.url,
        subject=subject,
        body=body,
        reader="customer",
        about={"member_number": link.member_number},
    )
    return await email_link(runtime, principal, mail, to)
