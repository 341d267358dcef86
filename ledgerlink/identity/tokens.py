"""Random bearer secrets (session cookies, API tokens) and how we store them.

These secrets are 256-bit random values, so a fast SHA-256 is enough to store them:
nobody can brute-force the pre-image, and lookups stay an indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets

API_TOKEN_PREFIX = "llk_"  # noqa: S105 - a public marker, not a secret


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_token() -> tuple[str, str]:
    """Return ``(token, display_prefix)``; the token is shown to its owner exactly once."""
    public = secrets.token_hex(4)
    return f"{API_TOKEN_PREFIX}{public}_{new_secret()}", f"{API_TOKEN_PREFIX}{public}"
