"""Sending a pay link to the payer by e-mail, through the configured SMTP connection.

The message names the invoice, the amount due, the due date and the link; it goes to the
address given (by default the ledger customer's e-mail), from the connection's sender.
Every message sent, or that could not be sent, is in ``notification_log`` (kind
``pay_link``) like finance's own e-mail (:mod:`ledgerlink.paylinks.sending`).
"""

from __future__ import annotations

from ledgerlink.identity.principal import Principal
from ledgerlink.paylinks.links import CreatedLink
from ledgerlink.paylinks.sending import LinkMail, checked_address, email_link
from ledgerlink.runtime import Runtime


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
    subject, body = message_for(link, link.organisation)
    mail = LinkMail(
        kind="pay_link",
        action="payment.pay_link",
        entity_type="pay_link",
        entity_id=link.nonce,
        url=link.url,
        subject=subject,
        body=body,
        reader="payer",
        about={"invoice_number": link.invoice_number},
    )
    return await email_link(runtime, principal, mail, to)


__all__ = ["checked_address", "message_for", "send_link"]
