"""The payer's pages: ``/pay/<signed token>`` (no sign-in; the signed link is the key).

The page shows the organisation, the invoice, what is due (read live) and the payer, and
draws PayTrace's hosted card fields: PayTrace's script and iframe come from PayTrace's
origin, which this page's Content-Security-Policy allows for scripts, frames and
connections (and nothing else does). The form posts only the one-time token the fields
give, the amount and the page's attempt id; the answer is a receipt at
``/pay/<token>/receipt/<attempt>`` (post-redirect-get, so a reload shows the receipt again
and charges nothing).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ledgerlink.paylinks.card_form import card_form
from ledgerlink.paylinks.links import LinkUnusable, LinkView, PayLinkRefused, view_link
from ledgerlink.paylinks.paying import PayForm, find_payment, pay
from ledgerlink.runtime import Runtime
from ledgerlink.web.deps import RuntimeDep
from ledgerlink.web.headers import CONTENT_SECURITY_POLICY
from ledgerlink.web.portal.rendering import render

router = APIRouter(include_in_schema=False)

#: Where a refusal is shown on the page.
FIELDS = ("amount", "card", "save_card")
_STATUS = {"tampered": 400, "expired": 410, "paid": 409, "unavailable": 503}


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


@dataclass(frozen=True)
class FormValues:
    """What the payer typed, shown again beside an error (never the card: it is not ours)."""

    amount: str = ""
    name: str = ""
    save_card: bool = False


@router.get("/pay/{token}")
async def pay_page(request: Request, token: str, runtime: RuntimeDep) -> Response:
    try:
        view = await view_link(runtime, token)
    except LinkUnusable as unusable:
        return _unusable(request, unusable)
    return await _form(request, runtime, token, view, FormValues(), {})


@router.post("/pay/{token}")
async def pay_submit(request: Request, token: str, runtime: RuntimeDep) -> Response:
    data = await request.form()
    text = {name: str(data.get(name) or "")[:200] for name in data if name != "csrftoken"}
    values = FormValues(
        amount=text.get("amount", "").strip(),
        name=text.get("name", "").strip(),
        save_card=bool(text.get("save_card")),
    )
    form = PayForm(
        attempt=text.get("attempt", ""),
        amount=values.amount,
        hpf_token=text.get("hpf_token", ""),
        enc_key=text.get("enc_key", ""),
        save_card=values.save_card,
        name=values.name,
    )
    errors: dict[str, str] = {}
    try:
        payment = await pay(runtime, token, form)
    except LinkUnusable as unusable:
        return _unusable(request, unusable)
    except PayLinkRefused as refused:
        errors[refused.field if refused.field in FIELDS else "card"] = refused.message
    else:
        if payment.status == "approved":
            return RedirectResponse(f"/pay/{token}/receipt/{form.attempt}", status_code=303)
        errors["card"] = payment.message or "The card was not charged; enter it again"
    try:
        view = await view_link(runtime, token)
    except LinkUnusable as unusable:
        return _unusable(request, unusable)
    return await _form(request, runtime, token, view, values, errors, status_code=422)


@router.get("/pay/{token}/receipt/{attempt}")
async def receipt(request: Request, token: str, attempt: str, runtime: RuntimeDep) -> Response:
    try:
        payment = await find_payment(runtime, token, attempt)
    except LinkUnusable as unusable:
        return _unusable(request, unusable)
    if payment is None or payment.status != "approved":
        return render(
            request,
            "pay_unusable.html",
            status_code=404,
            reason="missing",
            message="No payment was taken with this page. Open the payment link again to pay.",
        )
    return render(request, "pay_receipt.html", payment=payment, token=token)


async def _form(
    request: Request,
    runtime: Runtime,
    token: str,
    view: LinkView,
    values: FormValues,
    errors: dict[str, str],
    *,
    status_code: int = 200,
) -> Response:
    try:
        fields = await card_form(runtime, view.claims.gateway_connection_id)
    except LinkUnusable as unusable:
        return _unusable(request, unusable)
    response = render(
        request,
        "pay.html",
        status_code=status_code,
        view=view,
        token=token,
        attempt=secrets.token_urlsafe(18),
        client_key=fields.client_key,
        script_url=fields.script_url,
        values=values,
        errors=errors,
    )
    response.headers["Content-Security-Policy"] = hosted_fields_policy(fields.origin)
    response.headers["Cache-Control"] = "no-store"
    return response


def _unusable(request: Request, unusable: LinkUnusable) -> Response:
    return render(
        request,
        "pay_unusable.html",
        status_code=_STATUS[unusable.reason],
        reason=unusable.reason,
        message=unusable.message,
    )
