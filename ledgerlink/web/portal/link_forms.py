"""What finance's two *make a link* pages share: *Ask for payment by link* (an invoice) and
*Ask for a card on file* (a member). Both read how long the link works, whether to e-mail
it and where, and which PayTrace account; refuse a bad value beside its field with what was
typed kept; make the link through their use case, e-mail it if asked (an e-mail that could
not be sent leaves the link to copy); and show the link or the problem on the same page.
Each page module keeps only its subject field, route and template.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from ledgerlink.blocking import reading
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.paylinks.sending import checked_address
from ledgerlink.paylinks.signed_links import DEFAULT_DAYS, IssuedLink, PayLinkRefused
from ledgerlink.payments.gateway_connections import paytrace_connections
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.runtime import Runtime
from ledgerlink.web.portal.rendering import render

L = TypeVar("L", bound=IssuedLink)
#: The fields every link form has, where a refusal is shown.
FIELDS = ("expires_in_days", "email", "connection_id")


@dataclass(frozen=True)
class LinkForm:
    """What finance typed (kept in the form beside an error)."""

    expires_in_days: str = str(DEFAULT_DAYS)
    send_email: bool = False
    email: str = ""
    connection_id: str = ""

    @classmethod
    def from_form(cls, data: FormData) -> LinkForm:
        return cls(
            expires_in_days=str(data.get("expires_in_days") or "").strip()[:4],
            send_email=bool(data.get("send_email")),
            email=str(data.get("email") or "").strip()[:254],
            connection_id=str(data.get("connection_id") or "").strip()[:18],
        )

    @property
    def days(self) -> int:
        if not self.expires_in_days.isdigit():
            raise PayLinkRefused("expires_in_days", "Enter how many days the link works, e.g. 14")
        return int(self.expires_in_days)

    @property
    def gateway_connection_id(self) -> int | None:
        return int(self.connection_id) if self.connection_id.isdigit() else None


async def make_link_page(
    request: Request,
    runtime: Runtime,
    form: LinkForm,
    *,
    template: str,
    subject_field: str,
    make: Callable[[int], Awaitable[L]],
    send: Callable[[L, str], Awaitable[str]],
    **context: Any,
) -> Response:
    """Make the link (``make``, given the days it works; e-mailed through ``send`` when
    asked) and show it, or the
    refusal beside its field (``subject_field`` when it names none of the form's), or the
    problem reaching PayTrace or the ledger."""
    errors: dict[str, str] = {}
    problem, emailed_to, email_problem = "", None, None
    link: L | None = None
    try:
        days = form.days  # refused before anything is read
        if form.send_email and form.email:
            checked_address(form.email)
        link = await make(days)
        if form.send_email:
            try:
                emailed_to = await send(link, form.email or link.customer_email)
            except PayLinkRefused as refused:
                email_problem = refused.message
    except PayLinkRefused as refused:
        errors[refused.field if refused.field in FIELDS else subject_field] = refused.message
    except (PaymentProblem, UpstreamError) as exc:
        problem = exc.reason if isinstance(exc, PaymentProblem) else exc.message
    gateways = await reading(runtime.db, gateway_choices)
    return render(
        request,
        template,
        status_code=422 if errors else 502 if problem else 200,
        form=form,
        gateways=gateways,
        errors=errors,
        problem=problem,
        link=link,
        emailed_to=emailed_to,
        email_problem=email_problem,
        **context,
    )


def gateway_choices(session: Session) -> list[tuple[int, str]]:
    """The PayTrace accounts to choose from (the form shows a choice when there are two)."""
    return [(c.id, c.name) for c in paytrace_connections(session)]
