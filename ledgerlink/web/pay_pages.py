"""The payer's pages: ``/pay/<signed token>`` (no sign-in; the signed link is the key).

The page shows the organisation, the invoice, what is due (read live) and the payer, and
draws PayTrace's hosted card fields: PayTrace's script and iframe come from PayTrace's
origin, which this page's Content-Security-Policy allows for scripts, frames and
connections (and nothing else does; :mod:`ledgerlink.web.payer_pages`). The form posts only
the one-time token the fields give, the amount and the page's attempt id; the answer is a
receipt at ``/pay/<token>/receipt/<attempt>`` (post-redirect-get, so a reload shows the
receipt again and charges nothing).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ledgerlink.paylinks.links import PAY_LINK, LinkView
from ledgerlink.paylinks.paying import PayForm, find_payment, pay, view_for_payer
from ledgerlink.paylinks.signed_links import LinkUnusable, PayLinkRefused
from ledgerlink.web.deps import RuntimeDep
from ledgerlink.web.payer_pages import PayerPage, field_error, posted
from ledgerlink.web.portal.rendering import render

router = APIRouter(include_in_schema=False)

#: Where a refusal is shown on the page.
FIELDS = ("amount", "card", "save_card")
PAGE: PayerPage[LinkView] = PayerPage(
    kind=PAY_LINK,
    template="pay.html",
    unusable_template="pay_unusable.html",
    read=view_for_payer,
    # each drawing of the page is a new attempt: its key makes a resent form charge once
    context_of=lambda _view: {"attempt": secrets.token_urlsafe(18)},
)


@dataclass(frozen=True)
class FormValues:
    """What the payer typed, shown again beside an error (never the card: it is not ours)."""

    amount: str = ""
    name: str = ""
    save_card: bool = False


@router.get("/pay/{token}")
async def pay_page(request: Request, token: str, runtime: RuntimeDep) -> Response:
    return await PAGE.show(request, runtime, token, FormValues(), {})


@router.post("/pay/{token}")
async def pay_submit(request: Request, token: str, runtime: RuntimeDep) -> Response:
    text = await posted(request)
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
    try:
        payment = await pay(runtime, token, form)
    except LinkUnusable as unusable:
        return PAGE.unusable(request, unusable)
    except PayLinkRefused as refused:
        errors = field_error(refused, FIELDS)
    else:
        if payment.status == "approved":
            return RedirectResponse(f"/pay/{token}/receipt/{form.attempt}", status_code=303)
        errors = {"card": payment.message or "The card was not charged; enter it again"}
    return await PAGE.show(request, runtime, token, values, errors, status_code=422)


@router.get("/pay/{token}/receipt/{attempt}")
async def receipt(request: Request, token: str, attempt: str, runtime: RuntimeDep) -> Response:
    try:
        payment = await find_payment(runtime, token, attempt)
    except LinkUnusable as unusable:
        return PAGE.unusable(request, unusable)
    if payment is None or payment.status != "approved":
        return render(
            request,
            PAGE.unusable_template,
            status_code=404,
            reason="missing",
            message="No payment was taken with this page. Open the payment link again to pay.",
        )
    return render(request, "pay_receipt.html", payment=payment, token=token)
