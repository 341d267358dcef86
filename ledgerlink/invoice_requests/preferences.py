"""A member's choice for new invoices, and the consent autopay needs.

*Nothing* is the default (no row). *E-mail a pay link* needs only a linked ledger
customer. *Autopay* charges the customer's stored PayTrace profile (card, or bank account
by ACH) on each invoice's due date, so it is refused unless finance records how and when
the customer consented, and unless PayTrace holds a profile for the customer: the refusal
says how to get one (the card-capture link on the member's page). Every change is
audited with the consent it was made with.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading, writing
from ledgerlink.connectors import registry
from ledgerlink.connectors.errors import NotFound
from ledgerlink.domain.text import control_character_problem
from ledgerlink.identity.principal import Principal
from ledgerlink.invoice_requests.gateways import gateway_for_ledger
from ledgerlink.members.registry import get_member
from ledgerlink.payments.charge_outcomes import ChargeRefused
from ledgerlink.payments.charges import profile_for
from ledgerlink.payments.targets import PaymentTargets
from ledgerlink.runtime import Runtime
from ledgerlink.store import audit
from ledgerlink.store.invoice_request_models import InvoiceRequestSetting
from ledgerlink.store.member_models import MemberLinkRow
from ledgerlink.store.models import Connection
from ledgerlink.store.types import utcnow

Mode = Literal["nothing", "email", "autopay"]
MODES: dict[str, str] = {
    "nothing": "Nothing (finance asks for payment itself)",
    "email": "E-mail a pay link for each new invoice",
    "autopay": "Autopay: charge the stored card or bank account on the due date",
}


class InvoiceRequestRefused(ChargeRefused):
    """The setting was not changed: ``field`` names the input, the message the fix."""


@dataclass(frozen=True)
class Preference:
    """What the member page and the API show."""

    member_number: str
    mode: str
    mode_label: str
    consent_method: str = ""
    consent_given_on: dt.date | None = None
    consent_recorded_by: str = ""
    consent_recorded_at: dt.datetime | None = None
    updated_by: str = ""
    updated_at: dt.datetime | None = None


def preference_of(session: Session, member_number: str) -> Preference:
    """The member's setting (``nothing`` when none was ever set);
    :class:`~ledgerlink.members.registry.MemberNotFound` for an unknown number."""
    member = get_member(session, member_number)
    row = session.get(InvoiceRequestSetting, member.id)
    if row is None:
        return Preference(member.number, "nothing", MODES["nothing"])
    return Preference(
        member_number=member.number,
        mode=row.mode,
        mode_label=MODES.get(row.mode, row.mode),
        consent_method=row.consent_method,
        consent_given_on=row.consent_given_on,
        consent_recorded_by=row.consent_recorded_by,
        consent_recorded_at=row.consent_recorded_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def mode_of(session: Session, member_id: int) -> str:
    row = session.get(InvoiceRequestSetting, member_id)
    return row.mode if row is not None else "nothing"


@dataclass(frozen=True)
class _Linked:
    member_id: int
    number: str
    links: list[tuple[int, str, str]]  # (ledger connection id, customer id, customer number)


def _linked(session: Session, member_number: str) -> _Linked:
    member = get_member(session, member_number)
    rows = session.execute(
        select(
            MemberLinkRow.connection_id, MemberLinkRow.customer_id, MemberLinkRow.customer_number
        ).where(
            MemberLinkRow.member_id == member.id,
            MemberLinkRow.unlinked_at.is_(None),
            MemberLinkRow.connection_id.in_(
                select(Connection.id).where(Connection.kind.in_(registry.ledger_kinds()))
            ),
        )
    ).all()
    return _Linked(member.id, member.number, [(int(c), str(i), str(n or "")) for c, i, n in rows])


def _checked_consent(
    method: str, given_on: str | dt.date | None, today: dt.date
) -> tuple[str, dt.date]:
    how = method.strip()
    if not how:
        raise InvoiceRequestRefused(
            "consent_method",
            "Say how the customer agreed to autopay, e.g. 'by phone to the membership desk' "
            "or 'signed mandate form'",
        )
    problem = control_character_problem(how)
    if problem or len(how) > 200:
        raise InvoiceRequestRefused(
            "consent_method",
            f"Describe the consent in up to 200 plain characters ({problem or 'too long'})",
        )
    if given_on is None or given_on == "":
        raise InvoiceRequestRefused(
            "consent_given_on", "Enter the date the customer agreed, e.g. 2026-12-07"
        )
    if isinstance(given_on, str):
        try:
            given_on = dt.date.fromisoformat(given_on.strip())
        except ValueError:
            raise InvoiceRequestRefused(
                "consent_given_on",
                f"Enter the date the customer agreed as YYYY-MM-DD ({given_on!r} is not one)",
            ) from None
    if given_on > today:
        raise InvoiceRequestRefused(
            "consent_given_on", "The consent date is in the future; enter the day it was given"
        )
    return how, given_on


async def _require_profile(runtime: Runtime, linked: _Linked) -> None:
    """Refuse autopay unless PayTrace holds a profile for the member's customer in a
    ledger that a PayTrace connection posts to."""
    capture = f"/members/{linked.number}/card-capture-link"
    how_to_get_one = (
        f"Send the customer a card-capture link (Ask for a card on file… on the member's page, "
        f"{capture}) and turn autopay on once they have saved a card or bank account"
    )
    targets = PaymentTargets(runtime)
    try:
        for connection_id, customer_id, customer_number in linked.links:
            gateway = await reading(
                runtime.db,
                functools.partial(gateway_for_ledger, ledger_connection_id=connection_id),
            )
            if gateway is None:
                continue
            opened = await targets.ledger_by_id(connection_id)
            profile = await reading(
                runtime.db,
                functools.partial(
                    profile_for,
                    ledger=opened,
                    customer_id=customer_id,
                    customer_number=customer_number,
                ),
            )
            if profile is None:
                continue
            try:
                await (await targets.gateway(gateway)).customer(profile)
            except NotFound:
                raise InvoiceRequestRefused(
                    "mode",
                    f"Autopay needs a card or bank account stored with PayTrace for member "
                    f"{linked.number}, and PayTrace has none (no customer profile {profile}). "
                    + how_to_get_one,
                ) from None
            return
    finally:
        await targets.aclose()
    raise InvoiceRequestRefused(
        "mode",
        f"Autopay needs a card or bank account stored with PayTrace for member "
        f"{linked.number}, and none can be found: the member's ledger customer is not in a "
        "ledger PayTrace payments post to. " + how_to_get_one,
    )


async def set_preference(
    runtime: Runtime,
    principal: Principal,
    member_number: str,
    *,
    mode: str,
    consent_method: str = "",
    consent_given_on: str | dt.date | None = None,
    now: dt.datetime | None = None,
) -> Preference:
    """Change the member's setting (audited with the consent, for autopay).
    :class:`InvoiceRequestRefused` names the field and the fix; nothing is changed then."""
    now = now or utcnow()
    if mode not in MODES:
        raise InvoiceRequestRefused(
            "mode", f"Choose one of: {', '.join(MODES)} ({mode[:40]!r} is not one)"
        )
    linked = await reading(runtime.db, lambda session: _linked(session, member_number))
    if mode != "nothing" and not linked.links:
        raise InvoiceRequestRefused(
            "mode",
            f"Member {linked.number} is not linked to a customer in a ledger, so no invoice "
            "of theirs can be found; use Create Account or Link existing on the member's "
            "page first",
        )
    consent: tuple[str, dt.date] | None = None
    if mode == "autopay":
        consent = _checked_consent(consent_method, consent_given_on, now.date())
        await _require_profile(runtime, linked)

    def save(session: Session) -> Preference:
        row = session.get(InvoiceRequestSetting, linked.member_id)
        before = None
        if row is None:
            row = InvoiceRequestSetting(member_id=linked.member_id)
            session.add(row)
        else:
            before = {"mode": row.mode, "consent_method": row.consent_method}
        row.mode = mode
        row.updated_by = principal.actor
        row.updated_at = now
        if consent is not None:
            row.consent_method, row.consent_given_on = consent
            row.consent_recorded_by = principal.actor
            row.consent_recorded_at = now
        elif mode != "autopay":
            # consent is for autopay only: turning it off withdraws it
            row.consent_method, row.consent_given_on = "", None
            row.consent_recorded_by, row.consent_recorded_at = "", None
        session.flush()
        audit.record(
            session,
            actor=principal.actor,
            action="invoice_requests.setting_changed",
            entity_type="member",
            entity_id=linked.number,
            before=before,
            after={
                "mode": mode,
                **(
                    {
                        "consent_method": consent[0],
                        "consent_given_on": consent[1].isoformat(),
                        "consent_recorded_by": principal.actor,
                        "consent_recorded_at": now.isoformat(),
                    }
                    if consent is not None
                    else {}
                ),
            },
        )
        return preference_of(session, linked.number)

    return await writing(runtime.db, save)
