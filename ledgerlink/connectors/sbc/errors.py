"""SBC's error arrays turned into errors a finance user can act on.

SBC answers ``[{"$severity": "error", "$dataCode": "RecordInvalid", "$message": "can't be
blank", "$source": "name"}]``; we say "Sage rejected the contact: name can't be blank".
"""

from __future__ import annotations

from typing import Any

import httpx

from ledgerlink.connectors.errors import (
    AuthExpired,
    Misconfigured,
    NotFound,
    Rejected,
    Unavailable,
    UpstreamError,
)

SYSTEM = "sbc"


def error_items(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return []
    if isinstance(body, dict):
        body = [body]
    return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []


def describe_items(items: list[dict[str, Any]]) -> tuple[str | None, str]:
    """(first field, readable text) from SBC error items."""
    parts = []
    first_field = None
    for item in items:
        source = str(item.get("$source") or "").strip()
        message = str(item.get("$message") or item.get("error") or "").strip()
        if source and first_field is None:
            first_field = source
        parts.append(f"{source} {message}".strip() if source else message)
    return first_field, "; ".join(p for p in parts if p) or "no reason given"


def classify(response: httpx.Response, what: str = "the request") -> UpstreamError | None:
    """Typed error for an SBC response (``what`` names the record: "the contact")."""
    status = response.status_code
    if status < 400:
        return None
    items = error_items(response)
    field, text = describe_items(items)
    code = str(items[0].get("$dataCode")) if items and items[0].get("$dataCode") else None
    if status == 401:
        return AuthExpired(
            SYSTEM,
            "Sage refused our access token; the connection will renew it, and if that fails "
            "an administrator must use 'Connect to Sage' again",
            status=status,
            upstream_code=code,
        )
    if status == 403:
        return Misconfigured(
            SYSTEM,
            f"Sage says the connected user may not do this: {text}. Check the user's access "
            "rights in Sage or pick another business",
            status=status,
            upstream_code=code,
        )
    if status == 404:
        return NotFound(
            SYSTEM, f"Sage has no such record for {what}: {text}", status=status, upstream_code=code
        )
    if status in (400, 409, 422):
        return Rejected(
            SYSTEM, f"Sage rejected {what}: {text}", status=status, upstream_code=code, field=field
        )
    if status >= 500:
        return Unavailable(
            SYSTEM,
            f"Sage failed ({status}): {text}",
            status=status,
            upstream_code=code,
            retryable=False,
        )
    return UpstreamError(
        SYSTEM, f"Sage answered {status} for {what}: {text}", status=status, upstream_code=code
    )
