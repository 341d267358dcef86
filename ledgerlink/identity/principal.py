"""The authenticated caller of a request or command, as the rest of the code sees it."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerlink.identity.roles import Role


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int | None
    email: str
    role: Role
    via: str  # "session", "token", "cli" or "system"

    @property
    def actor(self) -> str:
        """How the audit chain names this caller."""
        return self.email if self.via in ("session", "token") else f"{self.via}:{self.email}"

    def can(self, required: Role) -> bool:
        return self.role.allows(required)


SYSTEM = Principal(user_id=None, email="ledgerlink", role=Role.ADMIN, via="system")


def job_principal(actor: str) -> Principal:
    """Who a job acts as: the person who started it, marked as acting through a job."""
    return Principal(user_id=None, email=actor, role=Role.OPERATOR, via="job")


def system_principal(name: str) -> Principal:
    """Work the service starts by itself (a schedule firing), named for the audit chain."""
    return Principal(user_id=None, email=name, role=Role.OPERATOR, via="system")


def cli_principal() -> Principal:
    """Commands run on the server's shell act with full rights, named after the OS user."""
    import getpass

    return Principal(user_id=None, email=getpass.getuser(), role=Role.ADMIN, via="cli")
