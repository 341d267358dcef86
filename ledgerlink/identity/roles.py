"""The three roles and what each may do.

Roles are ordered: an operator can do everything a viewer can, an admin everything an
operator can. A route states the least role it needs.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"  # reads everything, changes nothing (auditors)
    OPERATOR = "operator"  # works the money: exceptions, retries, reconciliation, sync runs
    ADMIN = "admin"  # configures: connections, mappings, schedules, users

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise ValueError(f"unknown role {value!r}: use one of {allowed}") from None
