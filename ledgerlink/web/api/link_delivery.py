"""What the API's link-making routes share: how finance asks for a link (which PayTrace
connection, how long it works, whether to e-mail it and where) and how the answer says where
it went. A pay link (``POST /payments/pay-links``) and a card-capture link
(``POST /members/{number}/card-capture-links``) each add only what names their subject.

An address given to e-mail to is checked before a link is made; an e-mail that cannot be
sent does not undo the link (the answer says why, and the link can be copied instead).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, Field

from ledgerlink.paylinks.sending import checked_address
from ledgerlink.paylinks.signed_links import DEFAULT_DAYS, MAX_DAYS, IssuedLink, PayLinkRefused
from ledgerlink.web.api.inputs import INT64_MAX, CleanText
from ledgerlink.web.api.outputs import ResponseModel

L = TypeVar("L", bound=IssuedLink)


class LinkIn(BaseModel):
    connection_id: int | None = Field(
        default=None, strict=True, ge=1, le=INT64_MAX, description="PayTrace connection."
    )
    expires_in_days: int = Field(default=DEFAULT_DAYS, strict=True, ge=1, le=MAX_DAYS)
    send_email: bool = Field(default=False, description="E-mail the link to the customer.")
    email: CleanText = Field(
        default="", max_length=254, description="Where to send it; empty: the customer's e-mail."
    )


class LinkOut(ResponseModel):
    url: str = Field(description="The link (absolute when LEDGERLINK_BASE_URL is set).")
    path: str
    customer_name: str
    expires_at: dt.datetime
    emailed_to: str | None = None
    email_problem: str | None = Field(
        default=None, description="Why the e-mail was not sent (the link works anyway)."
    )


async def make_and_send(
    body: LinkIn,
    make: Callable[[], Awaitable[L]],
    send: Callable[[L, str], Awaitable[str]],
) -> tuple[L, dict[str, object]]:
    """The link ``make`` returns, and the answer's common fields: e-mailed through ``send``
    (to ``body.email``, else the customer's e-mail) when asked."""
    if body.send_email and body.email:
        checked_address(body.email)  # refused before a link is made
    link = await make()
    emailed_to, problem = None, None
    if body.send_email:
        try:
            emailed_to = await send(link, body.email or link.customer_email)
        except PayLinkRefused as refused:
            problem = refused.message
    return link, {
        "url": link.url,
        "path": link.path,
        "customer_name": link.customer_name,
        "expires_at": link.expires_at,
        "emailed_to": emailed_to,
        "email_problem": problem,
    }
