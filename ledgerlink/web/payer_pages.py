"""What the payer's pages have in common, whatever their signed link is for.

A pay page (``/pay/<token>``) and a card page (``/card/<token>``) are opened without signing
in (the signed link is the key), draw PayTrace's hosted card fields under a
Content-Security-Policy that lets PayTrace's script, iframe and calls in and nothing else,
are never cached, read their form the same way and answer a link that cannot be used with
a page saying why. Each page module keeps only its own fields, template and use case.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from fastapi import Request
from fastapi.responses import Response

from ledgerlink.paylinks import tokens
from ledgerlink.paylinks.card_form import card_form
from ledgerlink.paylinks.signed_links import LinkKind, LinkUnusable, PayLinkRefused
from ledgerlink.runtime import Runtime
from ledgerlink.web.headers import CONTENT_SECURITY_POLICY
from ledgerlink.web.portal.rendering import render


class LinkPageView(Protocol):
    """What a payer's page reads live from its link (an invoice and what is due, or the
    customer whose card is asked for); its claims name the PayTrace connection."""

    @property
    def claims(self) -> tokens.LinkClaims: ...


V = TypeVar("V", bound=LinkPageView)

#: The answer's status for each reason a link cannot be used.
STATUS = {"tampered": 400, "expired": 410, "paid": 409, "used": 409, "unavailable": 503}


def hosted_fields_policy(origin: str) -> str:
    """The portal's policy with PayTrace's origin allowed for its script, its card-fields
    iframe and its calls; every other directive as the rest of the portal has it, except
    that PayTrace's script may size its iframe with a ``style`` attribute (inline style
    attributes only: no inline ``<style>``, and no inline script)."""
    directives = []
    for directive in CONTENT_SECURITY_POLICY.split("; "):
        if directive.startswith(("script-src ", "connect-src ")):
            directive = f"{directive} {origin}"
        directives.append(directive)
    directives.append(f"frame-src {origin}")
    directives.append("style-src-attr 'unsafe-inline'")
    return "; ".join(directives)


async def posted(request: Request) -> dict[str, str]:
    """The payer's form as text (each value cut at 200 characters; the CSRF token left
    out): the card fields' token, and what the payer typed."""
    data = await request.form()
    return {name: str(data.get(name) or "")[:200] for name in data if name != "csrftoken"}


def field_error(refused: PayLinkRefused, fields: tuple[str, ...]) -> dict[str, str]:
    """The refusal beside its field on the page, else beside the card fields (the payer's
    way forward for anything PayTrace refused)."""
    return {refused.field if refused.field in fields else "card": refused.message}


def unusable_page(request: Request, template: str, unusable: LinkUnusable) -> Response:
    return render(
        request,
        template,
        status_code=STATUS[unusable.reason],
        reason=unusable.reason,
        message=unusable.message,
    )


async def card_fields_page(
    request: Request,
    runtime: Runtime,
    kind: LinkKind,
    *,
    template: str,
    unusable_template: str,
    gateway_connection_id: int,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """``template`` with PayTrace's hosted card fields (a fresh client key: PayTrace's keys
    last 15 minutes) under their policy, never cached; the unusable page when PayTrace
    cannot give a key now."""
    try:
        fields = await card_form(runtime, gateway_connection_id, kind)
    except LinkUnusable as unusable:
        return unusable_page(request, unusable_template, unusable)
    response = render(
        request,
        template,
        status_code=status_code,
        client_key=fields.client_key,
        script_url=fields.script_url,
        **context,
    )
    response.headers["Content-Security-Policy"] = hosted_fields_policy(fields.origin)
    response.headers["Cache-Control"] = "no-store"
    return response


@dataclass(frozen=True)
class PayerPage(Generic[V]):
    """One kind of payer's page: its link kind, templates, and how it reads its link."""

    kind: LinkKind
    template: str
    unusable_template: str
    #: the use case's read of the link (:class:`LinkUnusable` when it cannot be used)
    read: Callable[[Runtime, str], Awaitable[V]]
    #: what the template needs besides the view, the token, what was typed and the errors
    context_of: Callable[[V], dict[str, Any]]

    def unusable(self, request: Request, unusable: LinkUnusable) -> Response:
        return unusable_page(request, self.unusable_template, unusable)

    async def show(
        self,
        request: Request,
        runtime: Runtime,
        token: str,
        values: object,
        errors: dict[str, str],
        *,
        status_code: int = 200,
    ) -> Response:
        """The page read live now (after a refusal too: what is due may have changed),
        with ``values`` typed and ``errors`` beside their fields, or why it cannot be
        used."""
        try:
            view = await self.read(runtime, token)
        except LinkUnusable as unusable:
            return self.unusable(request, unusable)
        return await card_fields_page(
            request,
            runtime,
            self.kind,
            template=self.template,
            unusable_template=self.unusable_template,
            gateway_connection_id=view.claims.gateway_connection_id,
            status_code=status_code,
            view=view,
            token=token,
            values=values,
            errors=errors,
            **self.context_of(view),
        )
