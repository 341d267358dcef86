"""Reconciliation periods: a calendar month of a scope, closed when finance signs it off.

Closing locks the month: a resolution of a break dated in it and a statement import with
lines booked in it are refused, naming the period and who closed it, until an admin
reopens it with a reason. Closing, reopening and every refusal's cause are audited.
"""

from __future__ import annotations

import calendar
import re
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.recon.problems import ReconRefused
from ledgerlink.store import audit
from ledgerlink.store.recon_models import ReconBreak, ReconPeriod, ReconScope
from ledgerlink.store.types import utcnow

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def bounds(period: str) -> tuple[date, date]:
    """First and last day of ``YYYY-MM`` (refused, naming the field, otherwise)."""
    found = _PERIOD.match(period.strip())
    if found is None or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 1:
        raise ReconRefused("period", f"{period!r} is not a month; give it as YYYY-MM, e.g. 2026-11")
    year, month = int(found.group(1)), int(found.group(2))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _get_or_create(session: Session, scope_id: int, period: str) -> ReconPeriod:
    starts, ends = bounds(period)
    found = session.scalar(
        select(ReconPeriod).where(ReconPeriod.scope_id == scope_id, ReconPeriod.period == period)
    )
    if found is None:
        found = ReconPeriod(
            scope_id=scope_id, period=period, starts_on=starts, ends_on=ends, status="open"
        )
        session.add(found)
        session.flush()
    return found


def closed_period(session: Session, scope_id: int, day: date) -> ReconPeriod | None:
    """The closed period ``day`` falls in, if any."""
    return session.scalar(
        select(ReconPeriod).where(
            ReconPeriod.scope_id == scope_id,
            ReconPeriod.period == period_of(day),
            ReconPeriod.status == "closed",
        )
    )


def refuse_if_closed(session: Session, scope_id: int, day: date, what: str) -> None:
    """Refuse ``what`` when ``day`` is in a closed period, saying who closed it and how
    to reopen it."""
    closed = closed_period(session, scope_id, day)
    if closed is not None:
        raise ReconRefused(
            "period",
            f"{what} is dated {day.isoformat()}, in period {closed.period}, which "
            f"{closed.signed_off_by or 'someone'} closed; an admin must reopen the period "
            "(with a reason) first",
        )


def close_period(
    session: Session, principal: Principal, scope: ReconScope, period: str, *, note: str = ""
) -> ReconPeriod:
    """Sign off and lock ``period``. Refused while breaks dated in it are still open
    (resolve or explain them first), so a closed month has nothing unexplained."""
    found = _get_or_create(session, scope.id, period)
    if found.status == "closed":
        raise ReconRefused(
            "period", f"Period {period} is already closed (by {found.signed_off_by})"
        )
    open_breaks = session.scalars(
        select(ReconBreak.break_id).where(
            ReconBreak.scope_id == scope.id,
            ReconBreak.status == "open",
            ReconBreak.present.is_(True),
            ReconBreak.occurred_on >= found.starts_on,
            ReconBreak.occurred_on <= found.ends_on,
        )
    ).all()
    if open_breaks:
        raise ReconRefused(
            "period",
            f"Period {period} still has {len(open_breaks)} open break(s) "
            f"({', '.join(open_breaks[:3])}{'…' if len(open_breaks) > 3 else ''}); resolve "
            "or explain them, then close it",
        )
    found.status = "closed"
    found.signed_off_by = principal.actor
    found.closed_at = utcnow()
    found.close_note = note.strip() or None
    audit.record(
        session,
        actor=principal.actor,
        action="recon.period.close",
        entity_type="recon_period",
        entity_id=found.id,
        after={"scope_id": scope.id, "period": period, "note": note.strip()},
    )
    return found


def reopen_period(
    session: Session, principal: Principal, scope: ReconScope, period: str, *, reason: str
) -> ReconPeriod:
    """Unlock a closed period; the reason is required and kept with who and when."""
    reason = reason.strip()
    if not reason:
        raise ReconRefused("reason", "Say why the period is reopened (it is kept in the audit)")
    bounds(period)
    found = session.scalar(
        select(ReconPeriod).where(ReconPeriod.scope_id == scope.id, ReconPeriod.period == period)
    )
    if found is None or found.status != "closed":
        raise ReconRefused("period", f"Period {period} is not closed; there is nothing to reopen")
    before = {"signed_off_by": found.signed_off_by, "closed_at": found.closed_at}
    found.status = "open"
    found.reopened_by = principal.actor
    found.reopened_at = utcnow()
    found.reopen_reason = reason
    audit.record(
        session,
        actor=principal.actor,
        action="recon.period.reopen",
        entity_type="recon_period",
        entity_id=found.id,
        before=before,
        after={"scope_id": scope.id, "period": period, "reason": reason},
    )
    return found
