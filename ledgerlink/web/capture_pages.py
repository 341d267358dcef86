"""The payer's card-on-file pages: ``/card/<signed token>`` (no sign-in; the signed link
is the key), the card-capture twin of :mod:`ledgerlink.web.pay_pages`.

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
    CaptureForm,
    CaptureUnusable,
    CaptureView,
    consent_line,
    save_card,
    saved_card,
    view_capture,
)
from ledgerlink.paylinks.card_form import card_form
from ledgerlink.paylinks.links import LinkUnusable, PayLinkRefused
from ledgerlink.runtime import Runtime
from ledgerlink.web.deps import RuntimeDep
from ledgerlink.web.pay_pages import hosted_fields_policy
from ledgerlink.web.portal.rendering import render

router = APIRouter(include_in_schema=False)

FIELDS = ("card", "consent")
_STATUS = {"tampered": 400, "expired": 410, "used": 409, "unavailable": 503}


@dataclass(frozen=True)
class FormValues:
    """What the payer typed, shown again beside an error (never the card)."""

    name: str = ""
    consent: bool = False


@router.get("/card/{token}")
async def capture_page(request: Request, token: str, runtime: RuntimeDep) -> Response:
    try:
        view = await view_capture(runtime, token)
    except CaptureUnusable as unusable:
        return _unusable(request, unusable)
    return await _form(request, runtime, token, view, FormValues(), {})


@router.post("/card/{token}")
async def capture_submit(request: Request, token: str, runtime: RuntimeDep) -> Response:
    data = await request.form()
    text = {name: str(data.get(name) or "")[:200] for name in data if name != "csrftoken"}
    values = FormValues(name=text.get("name", "").strip(), consent=bool(text.get("consent")))
    form = CaptureForm(
        hpf_token=text.get("hpf_token", ""),
        enc_key=text.get("enc_key", ""),
        name=values.name,
        consent=values.consent,
    )
    try:
        await save_card(runtime, token, form)
    except CaptureUnusable as unusable:
        return _unusable(request, unusable)
    except PayLinkRefused as refused:
        errors = {refused.field if refused.field in FIELDS else "card": refused.message}
    else:
        return RedirectResponse(f"/card/{token}/saved", status_code=303)
    try:
        view = await view_capture(runtime, token)
    except CaptureUnusable as unusable:
        return _unusable(request, unusable)
    return await _form(request, runtime, token, view, values, errors, status_code=422)


@router.get("/card/{token}/saved")
async def saved(request: Request, token: str, runtime: RuntimeDep) -> Response:
    try:
        card = await saved_card(runtime, token)
    except CaptureUnusable as unusable:
        return _unusable(request, unusable)
    if card is None:
        return render(
            request,
            "capture_unusable.html",
            status_code=404,
            reason="missing",
            message="No card was saved with this link. Open the link again to save one.",
        )
    return render(request, "capture_saved.html", card=card)


async def _form(
    request: Request,
    runtime: Runtime,
    token: str,
    view: CaptureView,
    values: FormValues,
    errors: dict[str, str],
    *,
    status_code: int = 200,
) -> Response:
    try:
        fields = await card_form(runtime, view.claims.gateway_connection_id)
    except LinkUnusable as unusable:
        return _unusable(request, CaptureUnusable("unavailable", unusable.message))
    response = render(
        request,
        "capture.html",
        status_code=status_code,
        view=view,
        token=token,
        consent=consent_line(view.organisation),
        client_key=fields.client_key,
        script_url=fields.script_url,
        values=values,
        errors=errors,
    )
    response.headers["Content-Security-Policy"] = hosted_fields_policy(fields.origin)
    response.headers["Cache-Control"] = "no-store"
    return response


def _unusable(request: Request, unusable: CaptureUnusable) -> Response:
    return render(
        request,
        "capture_unusable.html",
        status_code=_STATUS[unusable.reason],
        reason=unusable.reason,
        message=unusable.message,
    )
