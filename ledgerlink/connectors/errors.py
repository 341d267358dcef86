"""What can go wrong upstream, as a small hierarchy finance users can act on.

Every error carries the system, a message written for an operator ("Sage rejected the
contact: name can't be blank"), and the upstream's own code and status for support.
Whether to retry is decided here once, not guessed at each call site.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class UpstreamError(Exception):
    system: str
    message: str
    status: int | None = None
    upstream_code: str | None = None
    #: True when trying again later can succeed without anyone changing anything.
    retryable: bool = False

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    @property
    def system_name(self) -> str:
        # Imported here: the registry's descriptors are built from these errors' module
        # (``Misconfigured``), a real cycle at import time.
        from ledgerlink.connectors import registry

        return registry.label(self.system)


@dataclass
class AuthExpired(UpstreamError):
    """The stored credentials no longer work; someone must re-authorise the connection."""


@dataclass
class RateLimited(UpstreamError):
    retry_after: float | None = None
    retryable: bool = True


@dataclass
class Rejected(UpstreamError):
    """The upstream refused the data; ``field`` names what to fix."""

    field: str | None = None


@dataclass
class NotFound(UpstreamError):
    pass


@dataclass
class Unavailable(UpstreamError):
    """Down, overloaded, timed out or unreachable. ``outcome_unknown`` means a write may or
    may not have happened (a timeout after sending without an idempotency key): it must be
    checked, never blindly repeated."""

    retryable: bool = True
    outcome_unknown: bool = False


@dataclass
class Misconfigured(UpstreamError):
    """A setting on our side is wrong (missing business, unknown bank account...)."""
