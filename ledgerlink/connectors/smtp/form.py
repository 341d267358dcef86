"""The e-mail settings form: recipients as one comma-separated field, alerts a check box,
and an empty digest time turning the digest off."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: The settings the form edits as plain text fields.
FORM_FIELDS = (
    "host",
    "port",
    "security",
    "username",
    "from_address",
    "digest_at",
    "timezone",
    "exceptions_threshold",
    "pending_minutes_threshold",
)


def form_settings(
    text: Mapping[str, str], values: Callable[[str], list[str]], settings: dict[str, Any]
) -> None:
    if "recipients" in text:
        settings["recipients"] = [r.strip() for r in text["recipients"].split(",") if r.strip()]
    if "alerts_shown" in text:
        settings["alerts"] = text.get("alerts") == "1"
    if "digest_at" in text:
        settings["digest_at"] = text["digest_at"]  # empty turns the digest off
