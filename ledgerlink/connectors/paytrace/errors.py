"""PayTrace answers, turned into outcomes and errors a finance user can act on."""

from __future__ import annotations

from typing import Any

import httpx

from ledgerlink.connectors.errors import (
    AuthExpired,
    Misconfigured,
    NotFound,
    Rejected,
    UpstreamError,
)

SYSTEM = "paytrace"

#: PayTrace error codes → the request field to fix (None: not a field problem).
FIELD_OF_CODE: dict[str, str] = {
    "30": "customer_id",
    "35": "credit_card.number",
    "43": "credit_card.expiration_month",
    "44": "credit_card.expiration_year",
    "58": "transaction_id",
    "811": "transaction_id",
    "171": "customer_id",
    "816": "transaction_id",
    "817": "transaction_id",
    "818": "transaction_id",
    "45": "check.account_number",
    "46": "check.routing_number",
    "80": "check_transaction_id",
}
NOT_FOUND_CODES = frozenset({"30", "58", "811"})
PERMISSIONS = "981"


def body_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    """[(code, message)] from PayTrace's ``errors`` map."""
    found = []
    errors = body.get("errors") or {}
    if isinstance(errors, dict):
        for code, messages in errors.items():
            for message in messages if isinstance(messages, list) else [messages]:
                found.append((str(code), str(message)))
    return found


def classify(response: httpx.Response) -> UpstreamError | None:
    status = response.status_code
    body = body_of(response)
    if status < 400:
        return None
    if status == 401 or body.get("error") == "invalid_token":
        return AuthExpired(
            SYSTEM,
            "PayTrace refused our access token; it is renewed automatically, and if the "
            "username or password changed an administrator must update them",
            status=status,
            upstream_code=str(body.get("error") or "") or None,
        )
    errors = error_messages(body)
    if errors:
        code, message = errors[0]
        text = "; ".join(f"{m} (code {c})" for c, m in errors)
        if code == PERMISSIONS:
            # 981 is PayTrace's "Log in failed for insufficient permissions.": the API
            # user may not do this (not a duplicate, not a field to fix).
            return Misconfigured(
                SYSTEM,
                f"PayTrace refused: {text}. The API user lacks the permission for this; an "
                "administrator must grant it in PayTrace (or use a user who has it) under "
                "Accounting Integration → PayTrace",
                status=status,
                upstream_code=code,
            )
        if code in NOT_FOUND_CODES:
            return NotFound(SYSTEM, f"PayTrace: {text}", status=status, upstream_code=code)
        return Rejected(
            SYSTEM,
            f"PayTrace rejected the request: {text}",
            status=status,
            upstream_code=code,
            field=FIELD_OF_CODE.get(code),
        )
    if body.get("error") == "invalid_grant":
        return Misconfigured(
            SYSTEM,
            "PayTrace does not accept the API username and password; check them under "
            "Accounting Integration → PayTrace",
            status=status,
            upstream_code="invalid_grant",
        )
    message = body.get("status_message") or body.get("error_description") or f"HTTP {status}"
    return UpstreamError(SYSTEM, f"PayTrace answered: {message}", status=status)
