"""The payer's card-on-file pages: ``/card/<signed token>`` (no sign-in; the signed link
is the key), the card-capture twin of :mod:`ledgerlink.web.pay_pages` (what both share is
:mod:`ledgerlink.web.payer_pages`).

The page shows the organisation and the customer, PayTrace's hosted card fields (under the
same Content-Security-Policy as the pay page) and a consent line; the form posts only the
one-time token the fields give. The answer is a confirmation at ``/card/<token>/saved``
(post-redirect-get: a reload shows it again and stores nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ledgerlink.paylinks.capture import (
    CARD_LINK,
    CaptureForm,
    CaptureView,
    consent_line,
    save_card,
    saved_card,
    view_capture,
)
from ledgerlink.paylinks.signed_links import LinkUnusable, PayLinkRefused
from ledgerlink.web.deps import RuntimeDep
from ledgerlink.web.payer_pages import PayerPage, field_error, posted
from ledgerlink.web.portal.rendering import render

router = APIRouter(include_in_schema=False)

FIELDS = ("card", "consent")
PAGE: PayerPage[CaptureView] = PayerPage(
    kind=CARD_LINK,
    template="capture.html",
    unusable_template="capture_unusable.html",
    read=view_capture,
    context_of=lambda view: {"consent": consent_line(view.organisation)},
)


@dataclass(frozen=True)
class FormValues:
    """What the payer typed, shown again beside an error (never the card)."""

    name: str = ""
    consent: bool = False


@router.get("/card/{token}")
async def capture_page(request: Request, token: str, runtime: RuntimeDep) -> Response:
    return await PAGE.show(request, runtime, token, FormValues(), {})


@router.post("/card/{token}")
async def capture_submit(request: Request, token: str, runtime: RuntimeDep) -> Response:
    text = await posted(request)
    values = FormValues(name=text.get("name", "").strip(), consent=bool(text.get("consent")))
    form = CaptureForm(
        hpf_token=text.get("hpf_token", ""),
        enc_key=text.get("enc_key", ""),
        name=values.name,
        consent=values.consent,
    )
    try:
        await save_card(runtime, token, form)
    except LinkUnusable as unusable:
        return PAGE.unusable(request, unusable)
    except PayLinkRefused as refused:
        errors = field_error(refused, FIELDS)
    else:
        return RedirectResponse(f"/card/{token}/saved", status_code=303)
    return await PAGE.show(request, runtime, token, values, errors, status_code=422)


@router.get("/card/{token}/saved")
async def saved(request: Request, token: str, runtime: RuntimeDep) -> Response:
    try:
        card = await saved_card(runtime, token)
    except LinkUnusable as unusable:
        return PAGE.unusable(request, unusable)
    if card is None:
        return render(
            request,
            PAGE.unusable_template,
            status_code=404,
            reason="missing",
            message="No card was saved with this link. Open the link again to save one.",
        )
    return render(request, "capture_saved.html", card=card)
