"""A member's payment requests for new invoices over the API: what happens when a ledger
raises a new invoice for the member's customer (nothing, an e-mailed pay link, autopay on
the due date with the customer's consent), and the latest requests. Reading needs a
viewer; changing the setting an operator (audited with the consent)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading
from ledgerlink.invoice_requests.preferences import Preference, set_preference
from ledgerlink.invoice_requests.views import MemberPanel, RequestRow, member_panel
from ledgerlink.web.api.inputs import CleanText
from ledgerlink.web.api.outputs import ResponseModel
from ledgerlink.web.deps import Operator, RuntimeDep, Viewer
from ledgerlink.web.problems import problem_responses

router = APIRouter(tags=["members"])
MemberNumber = Annotated[CleanText, Path(max_length=40)]


class SettingIn(BaseModel):
    mode: Literal["nothing", "email", "autopay"] = Field(
        description="nothing; email: e-mail a pay link for each new invoice; autopay: "
        "charge the stored card or bank account on each invoice's due date."
    )
    consent_method: CleanText = Field(
        default="",
        max_length=200,
        description="Autopay only: how the customer agreed (e.g. 'by phone to J. Smith').",
    )
    consent_given_on: dt.date | None = Field(
        default=None, description="Autopay only: the day the customer agreed."
    )


class SettingOut(ResponseModel):
    member_number: str
    mode: str
    mode_label: str
    consent_method: str
    consent_given_on: dt.date | None
    consent_recorded_by: str
    consent_recorded_at: dt.datetime | None
    updated_by: str
    updated_at: dt.datetime | None


class RequestOut(ResponseModel):
    invoice_number: str
    ledger: str
    mode: str
    state: str
    state_label: str
    amount: str
    due_date: dt.date | None
    emailed_to: str
    transaction_id: str
    message: str
    updated_at: dt.datetime


class InvoiceRequestsOut(ResponseModel):
    setting: SettingOut
    requests: list[RequestOut]


def _setting(preference: Preference) -> SettingOut:
    return SettingOut.model_validate(preference, from_attributes=True)


def _request(row: RequestRow) -> RequestOut:
    return RequestOut.model_validate(row, from_attributes=True)


@router.get(
    "/members/{number}/invoice-requests",
    summary="The member's setting for new invoices and their latest payment requests",
)
async def read_invoice_requests(
    number: MemberNumber, _: Viewer, runtime: RuntimeDep
) -> InvoiceRequestsOut:
    def read(session: Session) -> MemberPanel:
        return member_panel(session, number)

    panel = await reading(runtime.db, read)
    return InvoiceRequestsOut(
        setting=_setting(panel.preference), requests=[_request(r) for r in panel.requests]
    )


@router.put(
    "/members/{number}/invoice-requests/setting",
    summary="Choose what happens when a ledger raises a new invoice for the member",
    responses=problem_responses(502),
)
async def change_setting(
    number: MemberNumber, body: SettingIn, principal: Operator, runtime: RuntimeDep
) -> SettingOut:
    preference = await set_preference(
        runtime,
        principal,
        number,
        mode=body.mode,
        consent_method=body.consent_method,
        consent_given_on=body.consent_given_on,
    )
    return _setting(preference)
