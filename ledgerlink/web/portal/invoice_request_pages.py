"""Members → *New invoices*: finance chooses what happens when a ledger raises a new invoice
for the member's customer (operator role; audited with the autopay consent in the use
case). A refusal is shown beside its field with what was typed kept; the member page shows
the setting and the latest requests (``_invoice_requests_member.html``)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading
from ledgerlink.connectors.errors import UpstreamError
from ledgerlink.invoice_requests.preferences import (
    MODES,
    InvoiceRequestRefused,
    Preference,
    preference_of,
    set_preference,
)
from ledgerlink.payments.problems import PaymentProblem
from ledgerlink.web.deps import Operator, RuntimeDep
from ledgerlink.web.portal.rendering import render

router = APIRouter()
FIELDS = ("mode", "consent_method", "consent_given_on")


@dataclass(frozen=True)
class SettingForm:
    mode: str = "nothing"
    consent_method: str = ""
    consent_given_on: str = ""


def _page(
    request: Request,
    number: str,
    form: SettingForm,
    errors: dict[str, str] | None = None,
    problem: str = "",
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "invoice_requests_member.html",
        status_code=status_code,
        number=number,
        form=form,
        modes=MODES,
        errors=errors or {},
        problem=problem,
    )


@router.get("/members/{number}/invoice-requests")
async def setting_page(request: Request, number: str, _: Operator, runtime: RuntimeDep) -> Response:
    def read(session: Session) -> Preference:
        return preference_of(session, number[:40])

    current = await reading(runtime.db, read)
    form = SettingForm(
        current.mode,
        current.consent_method,
        current.consent_given_on.isoformat() if current.consent_given_on else "",
    )
    return _page(request, current.member_number, form)


@router.post("/members/{number}/invoice-requests")
async def change_setting(
    request: Request, number: str, principal: Operator, runtime: RuntimeDep
) -> Response:
    data = await request.form()
    form = SettingForm(
        mode=str(data.get("mode") or "nothing").strip()[:16],
        consent_method=str(data.get("consent_method") or "").strip()[:200],
        consent_given_on=str(data.get("consent_given_on") or "").strip()[:10],
    )
    try:
        saved = await set_preference(
            runtime,
            principal,
            number[:40],
            mode=form.mode,
            consent_method=form.consent_method,
            consent_given_on=form.consent_given_on or None,
        )
    except InvoiceRequestRefused as refused:
        field = refused.field if refused.field in FIELDS else "mode"
        return _page(request, number[:40], form, {field: refused.message}, status_code=422)
    except (PaymentProblem, UpstreamError) as exc:
        problem = exc.reason if isinstance(exc, PaymentProblem) else exc.message
        return _page(request, number[:40], form, problem=problem, status_code=502)
    return RedirectResponse(f"/members/{saved.member_number}#invoice-requests", status_code=303)
