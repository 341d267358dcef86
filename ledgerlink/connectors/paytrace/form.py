"""The PayTrace settings form: the environment picks the API address, polling is a check
box, and card payments are posted to one of the installation's ledger connections."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.blocking import reading
from ledgerlink.connectors import registry
from ledgerlink.store.models import Connection

if TYPE_CHECKING:
    from ledgerlink.runtime import Runtime

PAYTRACE_URLS = {
    "sandbox": "https://api.sandbox.paytrace.com",
    "production": "https://api.paytrace.com",
}

#: The settings the form edits as plain text fields.
FORM_FIELDS = (
    "username",
    "integrator_id",
    "environment",
    "api_base_url",
    "post_to_connection_id",
    "overpayment",
    "poll_interval_seconds",
    "poll_overlap_minutes",
    "level_three_default_commodity_code",
    "level_three_default_unit",
    "level_three_ship_from_zip",
)


async def page_context(runtime: Runtime, connection: Connection) -> dict[str, Any]:
    """The PayTrace addresses and the ledgers a PayTrace connection may post to (read in a
    database thread: this runs inside the portal's async route)."""
    ledgers = await reading(runtime.db, _ledgers)
    return {"paytrace_urls": PAYTRACE_URLS, "ledgers": ledgers}


def _ledgers(session: Session) -> list[tuple[int, str]]:
    rows = session.execute(
        select(Connection.id, Connection.name)
        .where(Connection.kind.in_(registry.ledger_kinds()))
        .order_by(Connection.name)
    ).all()
    return [(int(i), str(n)) for i, n in rows]


def form_settings(
    text: Mapping[str, str], values: Callable[[str], list[str]], settings: dict[str, Any]
) -> None:
    """The polling check box, and the environment's address when none was typed."""
    if "polling_shown" in text:
        settings["polling"] = text.get("polling") == "1"
    if "level_three_commodities" in text:
        settings["level_three_commodities"] = commodity_rows(text["level_three_commodities"])
    if "environment" in text and not text.get("api_base_url"):
        settings["api_base_url"] = PAYTRACE_URLS.get(
            text["environment"], settings.get("api_base_url")
        )


def commodity_rows(typed: str) -> list[dict[str, str]]:
    """The commodity table as typed, one item a line: ``ITEM = COMMODITY [UNIT]`` (blank
    lines skipped). Each line becomes a row as typed, so validation names what is wrong
    and the form shows the table back unchanged."""
    rows = []
    for line in typed.splitlines():
        if not line.strip():
            continue
        item, _, rest = line.partition("=")
        code, _, unit = rest.strip().partition(" ")
        rows.append(
            {
                "item_code": item.strip(),
                "commodity_code": code.strip(),
                "unit_of_measure": unit.strip(),
            }
        )
    return rows
