"""Who has done which step of the tour, and whether this installation shows it.

Per user and server-side, so the tour follows a person from browser to browser and a
dismissed tour stays dismissed at the next sign-in. The installation's switch is off
until the demo or an administrator turns it on (audited, like any configuration).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.identity.principal import Principal
from ledgerlink.identity.roles import Role
from ledgerlink.store import audit
from ledgerlink.store.tour_models import TourProgress, TourSetting
from ledgerlink.store.types import utcnow
from ledgerlink.tour.steps import KEYS, STEPS

_SETTING_ID = 1


@dataclass(frozen=True)
class TourState:
    """One user's tour as the portal shows it."""

    enabled: bool  # the installation shows the tour
    dismissed: bool
    done: frozenset[str]

    @property
    def showing(self) -> bool:
        return self.enabled and not self.dismissed

    @property
    def done_count(self) -> int:
        return len(self.done & KEYS)

    @property
    def finished(self) -> bool:
        return self.done >= KEYS

    def up_next(self, role: Role) -> str | None:
        """The step the panel points at: the first not done that ``role`` can do (a
        viewer is not pointed at a step they cannot do), else the first not done."""
        left = [step for step in STEPS if step.key not in self.done]
        for step in left:
            if role.allows(step.role):
                return step.key
        return left[0].key if left else None


def is_enabled(session: Session) -> bool:
    row = session.get(TourSetting, _SETTING_ID)
    return row is not None and row.enabled


def set_enabled(session: Session, by: Principal, enabled: bool) -> bool:
    """Turn the tour on or off for every user; returns whether anything changed."""
    row = session.get(TourSetting, _SETTING_ID)
    before = row is not None and row.enabled
    if before == enabled:
        return False
    if row is None:
        row = TourSetting(id=_SETTING_ID)
        session.add(row)
    row.enabled, row.changed_by, row.changed_at = enabled, by.actor, utcnow()
    session.flush()
    audit.record(
        session,
        actor=by.actor,
        action="tour.enabled" if enabled else "tour.disabled",
        entity_type="tour",
        entity_id=_SETTING_ID,
        before={"enabled": before},
        after={"enabled": enabled},
    )
    return True


def turn_on_unless_decided(session: Session, by: Principal) -> bool:
    """Turn the tour on if nobody has turned it on or off yet (the demo's first start);
    an administrator's later choice stands. Returns whether it was turned on."""
    if session.get(TourSetting, _SETTING_ID) is not None:
        return False
    return set_enabled(session, by, True)


def state(session: Session, user_id: int | None) -> TourState:
    """The tour of ``user_id`` (None, a caller that is not a person: never shown)."""
    enabled = user_id is not None and is_enabled(session)
    row = session.get(TourProgress, user_id) if user_id is not None else None
    if row is None:
        return TourState(enabled=enabled, dismissed=False, done=frozenset())
    return TourState(
        enabled=enabled, dismissed=row.dismissed_at is not None, done=frozenset(row.done)
    )


def _row(session: Session, user_id: int) -> TourProgress:
    row = session.scalar(select(TourProgress).where(TourProgress.user_id == user_id))
    if row is None:
        row = TourProgress(user_id=user_id, done=[], dismissed_at=None)
        session.add(row)
    return row


def mark_done(session: Session, user_id: int, key: str) -> None:
    """Record that the user did (or visited) step ``key``; unknown keys are refused by
    the caller, and a step already done stays done."""
    if key not in KEYS:
        raise ValueError(f"step: there is no tour step {key!r}")
    row = _row(session, user_id)
    if key not in row.done:
        row.done = [s.key for s in STEPS if s.key in {*row.done, key}]  # a new list: JSON
        row.updated_at = utcnow()


def dismiss(session: Session, user_id: int) -> None:
    row = _row(session, user_id)
    if row.dismissed_at is None:
        row.dismissed_at = row.updated_at = utcnow()


def restart(session: Session, user_id: int) -> None:
    """Bring the tour back from its first step (what was done is forgotten)."""
    row = _row(session, user_id)
    row.done, row.dismissed_at, row.updated_at = [], None, utcnow()
