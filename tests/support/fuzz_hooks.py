"""schemathesis hooks for fuzzing ledgerlink (loaded with ``SCHEMATHESIS_HOOKS=<this file>``).

The fuzzer keeps its own credentials: revoking its token, or demoting, disabling or
resetting the password of its own user, would turn every later request into a 401 and
end the fuzzing early. Such a request is sent for a user or token that does not exist
instead (still fuzzed, answered 404). The ids come from ``LEDGERLINK_FUZZ_OWN_USER_ID``
and ``LEDGERLINK_FUZZ_OWN_TOKEN_ID``.

Activating a connection tests it, which reaches the host a fuzzed setting names (the
vendors' real hosts by default): an activating PATCH is sent for a connection that does
not exist instead (still fuzzed, answered 404), as the connection test itself is left out
(``test_api_fuzz.REACH_OUT``). No connection becomes active, so no other change tests one.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

OWN_USER_ID = int(os.environ.get("LEDGERLINK_FUZZ_OWN_USER_ID", "0"))
OWN_TOKEN_ID = int(os.environ.get("LEDGERLINK_FUZZ_OWN_TOKEN_ID", "0"))
ELSEWHERE = 1_000_000


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    path, method = case.operation.path, case.operation.method.upper()
    params = case.path_parameters
    if not params:
        return
    own_user = path.endswith(("/users/{user_id}", "/users/{user_id}/password"))
    if own_user and method in ("PATCH", "POST") and _is(params.get("user_id"), OWN_USER_ID):
        params["user_id"] = OWN_USER_ID + ELSEWHERE
    if path.endswith("/tokens/{token_id}") and _is(params.get("token_id"), OWN_TOKEN_ID):
        params["token_id"] = OWN_TOKEN_ID + ELSEWHERE
    activating = isinstance(case.body, dict) and case.body.get("is_active") is True
    if path.endswith("/connections/{connection_id}") and method == "PATCH" and activating:
        params["connection_id"] = ELSEWHERE + _as_int(params.get("connection_id"))


def _as_int(value: Any) -> int:
    try:
        return abs(int(float(str(value).strip())))
    except (ValueError, OverflowError):
        return 0


def _is(value: Any, own_id: int) -> bool:
    """Whether ``value`` as sent (``1``, ``"1"``, ``"01"``, ``1.0``) names ``own_id``."""
    try:
        return float(str(value).strip()) == own_id
    except ValueError:
        return False
